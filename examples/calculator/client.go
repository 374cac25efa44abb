package calculator

import (
	"context"

	"github.com/arbor-rpc/arbor"
)

// Session is a client's Calculator. Its methods do not wait: each sends
// one call and returns at once, so that, as in the Cap'n Proto sample,
// building an expression out of operators, values and functions that do
// not exist yet costs no round trip. Only Result.Wait waits.
type Session struct {
	ref *arbor.Ref // the bootstrap Calculator, pipelined
}

// Open asks the server c is connected to for its bootstrap Calculator
// (see Bootstrap) without waiting for it.
func Open(ctx context.Context, c *arbor.Client) *Session {
	return &Session{ref: arbor.PipelineRef(arbor.Go0[*arbor.Ref](ctx, c, arbor.BootstrapFunction))}
}

// Close releases the Calculator. Values and Functions are released by
// their own Close.
func (s *Session) Close() error { return s.ref.Close() }

// capability is a Value or Function: the call that makes it, and a
// reference to what it will return, usable at once.
type capability struct {
	p   *arbor.Promise[*arbor.Ref] // nil for the client's own functions
	ref *arbor.Ref
}

func promised(p *arbor.Promise[*arbor.Ref]) *capability {
	return &capability{p: p, ref: arbor.PipelineRef(p)}
}

// Close releases the capability (the server frees it when nothing else
// holds it: a defined function keeps the functions it calls).
func (c *capability) Close() error {
	if c.p != nil {
		c.p.Release()
	}
	return c.ref.Close()
}

// Value is the result of an evaluation, living on the server (Cap'n
// Proto: Calculator.Value).
type Value struct{ *capability }

// Function is a function the server can call (Cap'n Proto:
// Calculator.Function): an operator, one defined with DefFunction, or the
// client's own (NewFunction).
type Function struct{ *capability }

// Evaluate sends evaluate(e).
func (s *Session) Evaluate(ctx context.Context, e Expression) *Value {
	return &Value{promised(arbor.Go1[*arbor.Ref](ctx, s.ref, "evaluate", e))}
}

// DefFunction sends defFunction: body may use Param(0)..Param(paramCount-1).
func (s *Session) DefFunction(ctx context.Context, paramCount int, body Expression) *Function {
	def := Definition{ParamCount: paramCount, Body: body}
	return &Function{promised(arbor.Go1[*arbor.Ref](ctx, s.ref, "defFunction", def))}
}

// Operator sends getOperator(op).
func (s *Session) Operator(ctx context.Context, op Operator) *Function {
	return &Function{promised(arbor.Go1[*arbor.Ref](ctx, s.ref, "getOperator", op))}
}

// Read sends read().
func (v *Value) Read(ctx context.Context) *Result {
	return &Result{p: arbor.Go0[float64](ctx, v.ref, "read")}
}

// Call sends call(params).
func (f *Function) Call(ctx context.Context, params ...float64) *Result {
	return &Result{p: arbor.Go1[float64](ctx, f.ref, "call", params)}
}

// Result is a number the server will send: the reply to Read or Call.
type Result struct {
	p *arbor.Promise[float64]
}

// Wait waits for the number.
func (r *Result) Wait() (float64, error) {
	x, err := r.p.Wait()
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
func Previous(v *Value) Expression { return Expression{Kind: KindPrevious, Previous: v.ref} }

// Call applies f to params.
func Call(f *Function, params ...Expression) Expression {
	return Expression{Kind: KindCall, Function: f.ref, Params: params}
}

// ---- client-side functions ----

// NewFunction returns a Function implemented by this process (Cap'n
// Proto: a class implementing Calculator.Function.Server), to use in
// expressions like the server's: fn runs when the server calls it, with
// paramCount parameters.
func NewFunction(name string, paramCount int, fn func(ctx context.Context, params []float64) (float64, error)) *Function {
	svc := arbor.NewService(name)
	mustRegister(arbor.Handle1(svc, "call", func(ctx context.Context, params []float64) (float64, error) {
		if len(params) != paramCount {
			return 0, arbor.Errorf(arbor.InvalidArgument, "%s: wrong number of parameters: got %d, want %d", name, len(params), paramCount)
		}
		return fn(ctx, params)
	}))
	return &Function{&capability{ref: svc.Ref()}}
}
