package calculator

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor"
)

// Session is a client's Calculator. Its methods do not wait: each sends
// one call and returns at once, so that, as in the Cap'n Proto sample,
// building an expression out of operators, values and functions that do
// not exist yet costs no round trip. Only Result.Wait waits.
type Session struct {
	boot *arbor.Promise[*arbor.Ref] // the bootstrap call
	ref  *arbor.Ref                 // the Calculator it will return

	mu   sync.Mutex
	live map[int]*capability // nil once closed
}

// Open asks the server c is connected to for a Calculator (the server
// function Register installs) without waiting for it.
func Open(ctx context.Context, c *arbor.Client) *Session {
	boot := arbor.Go0[*arbor.Ref](ctx, c, "calculator")
	return &Session{boot: boot, ref: arbor.PipelineRef(boot), live: make(map[int]*capability)}
}

// slots numbers the capabilities this process's sessions create. Numbers
// are unique across sessions, so that a Value used with the wrong session
// names an empty slot instead of another session's value.
var slots atomic.Int64

func newSlot() int { return int(slots.Add(1)) }

// capability is a Value or Function the session created in a slot.
type capability struct {
	s    *Session
	slot int
	// p is the call that creates it. The session keeps it (and so the
	// server keeps its answer) until Close: a promise dropped unfinished
	// cancels its call, a dropped promise releases its answer, and the
	// server runs calls on a promised capability only while its answer
	// is kept. arbor.PipelineRef(p) alone does not keep p reachable.
	p   *arbor.Promise[*arbor.Ref]
	ref *arbor.Ref // arbor.PipelineRef(p): callable before p resolves
}

func (s *Session) start(slot int, p *arbor.Promise[*arbor.Ref]) *capability {
	c := &capability{s: s, slot: slot, p: p, ref: arbor.PipelineRef(p)}
	s.mu.Lock()
	if s.live != nil {
		s.live[slot] = c
	}
	s.mu.Unlock()
	return c
}

// close makes the server forget the slot and release the capability.
func (c *capability) close(ctx context.Context) error {
	c.s.mu.Lock()
	_, live := c.s.live[c.slot]
	delete(c.s.live, c.slot)
	c.s.mu.Unlock()
	if !live {
		return nil
	}
	forgot := arbor.Go1[bool](ctx, c.s.ref, "forget", c.slot)
	c.release()
	_, err := forgot.Wait()
	forgot.Release()
	return err
}

// release lets the server drop the exported service and the answer that
// holds it.
func (c *capability) release() {
	if r, err := c.p.Wait(); err == nil {
		r.Close()
	}
	c.ref.Close()
}

// Close releases the Calculator and everything created through it.
func (s *Session) Close() error {
	s.mu.Lock()
	live := s.live
	s.live = nil
	s.mu.Unlock()
	for _, c := range live {
		c.release()
	}
	if r, err := s.boot.Wait(); err == nil {
		r.Close()
	}
	return s.ref.Close()
}

// Value is the result of an evaluation, living on the server (Cap'n
// Proto: Calculator.Value).
type Value struct{ *capability }

// Function is a function the server can call (Cap'n Proto:
// Calculator.Function): an operator, one defined with DefFunction, or a
// client's own, passed with Import.
type Function struct{ *capability }

// Close makes the server forget v and release it; expressions can no
// longer use it. It waits for the evaluation and for the server's reply.
func (v *Value) Close(ctx context.Context) error { return v.close(ctx) }

// Close makes the server forget f and release it; functions defined with
// f keep working. It waits for the call that created f and for the
// server's reply.
func (f *Function) Close(ctx context.Context) error { return f.close(ctx) }

// Evaluate sends evaluate(e).
func (s *Session) Evaluate(ctx context.Context, e Expression) *Value {
	slot := newSlot()
	return &Value{s.start(slot, arbor.Go2[*arbor.Ref](ctx, s.ref, "evaluate", e, slot))}
}

// DefFunction sends defFunction: body may use Param(0)..Param(paramCount-1).
func (s *Session) DefFunction(ctx context.Context, paramCount int, body Expression) *Function {
	slot := newSlot()
	def := Definition{ParamCount: paramCount, Body: body}
	return &Function{s.start(slot, arbor.Go2[*arbor.Ref](ctx, s.ref, "defFunction", def, slot))}
}

// Operator sends getOperator(op).
func (s *Session) Operator(ctx context.Context, op Operator) *Function {
	slot := newSlot()
	return &Function{s.start(slot, arbor.Go2[*arbor.Ref](ctx, s.ref, "getOperator", op, slot))}
}

// Import passes fn, a client-side Function (see NewFunction), to the
// server, which calls back into it when an expression calls the returned
// Function.
func (s *Session) Import(ctx context.Context, fn *arbor.Service) *Function {
	slot := newSlot()
	return &Function{s.start(slot, arbor.Go2[*arbor.Ref](ctx, s.ref, "importFunction", fn, slot))}
}

// Read sends read().
func (v *Value) Read(ctx context.Context) *Result {
	return &Result{p: arbor.Go0[float64](ctx, v.ref, "read"), keep: v}
}

// Call sends call(params).
func (f *Function) Call(ctx context.Context, params ...float64) *Result {
	return &Result{p: arbor.Go1[float64](ctx, f.ref, "call", params), keep: f}
}

// Result is a number the server will send: the reply to Read or Call.
type Result struct {
	p    *arbor.Promise[float64]
	keep any // the Value or Function called, alive until the reply
}

// Wait waits for the number.
func (r *Result) Wait() (float64, error) {
	x, err := r.p.Wait()
	runtime.KeepAlive(r.keep)
	r.p.Release()
	return x, err
}

// ---- building expressions ----

// Lit is a literal.
func Lit(x float64) Expression { return Expression{Kind: KindLiteral, Literal: x} }

// Param is parameter i of the function being defined.
func Param(i int) Expression { return Expression{Kind: KindParameter, Parameter: i} }

// Previous is the number in v, which need not have been computed yet
// (Cap'n Proto: previousResult).
func Previous(v *Value) Expression { return Expression{Kind: KindPrevious, Slot: v.slot} }

// Call applies f to params.
func Call(f *Function, params ...Expression) Expression {
	return Expression{Kind: KindCall, Slot: f.slot, Params: params}
}

// ---- client-side functions ----

// NewFunction returns a Function implemented by this process (Cap'n
// Proto: a class implementing Calculator.Function.Server), to pass to
// Session.Import. fn runs when the server calls it, with paramCount
// parameters.
func NewFunction(name string, paramCount int, fn func(ctx context.Context, params []float64) (float64, error)) *arbor.Service {
	svc := arbor.NewService(name)
	mustRegister(arbor.Handle1(svc, "call", func(ctx context.Context, params []float64) (float64, error) {
		if len(params) != paramCount {
			return 0, arbor.Errorf(arbor.InvalidArgument, "%s: wrong number of parameters: got %d, want %d", name, len(params), paramCount)
		}
		return fn(ctx, params)
	}))
	return svc
}
