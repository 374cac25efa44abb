package calculator

import (
	"context"
	"fmt"
	"sync"

	"github.com/arbor-rpc/arbor"
)

// Operator names one of the calculator's built-in binary operators
// (Cap'n Proto: enum Calculator.Operator).
type Operator string

// The operators getOperator knows.
const (
	Add      Operator = "add"
	Subtract Operator = "subtract"
	Multiply Operator = "multiply"
	Divide   Operator = "divide"
)

// Kind says which member of the Expression union is set.
type Kind string

// The kinds of expression.
const (
	KindLiteral   Kind = "literal"   // Literal
	KindPrevious  Kind = "previous"  // the Value in Slot (Cap'n Proto: previousResult)
	KindParameter Kind = "parameter" // parameter number Parameter of the function being defined
	KindCall      Kind = "call"      // the Function in Slot applied to Params
)

// Expression is the calculator's expression tree (Cap'n Proto: struct
// Calculator.Expression). Capabilities cannot travel inside a struct in
// Arbor, so an expression names Values and Functions by their slot: the
// number the client gave the call that created them (see the package
// documentation).
type Expression struct {
	Kind      Kind         `msgpack:"kind"`
	Literal   float64      `msgpack:"literal,omitempty"`
	Slot      int          `msgpack:"slot,omitempty"`
	Parameter int          `msgpack:"parameter,omitempty"`
	Params    []Expression `msgpack:"params,omitempty"`
}

// Definition is the argument of defFunction: a body that may use
// parameters 0..ParamCount-1.
type Definition struct {
	ParamCount int        `msgpack:"paramCount"`
	Body       Expression `msgpack:"body"`
}

// MaxSlots bounds the Values and Functions one calculator session names.
const MaxSlots = 10000

// Register registers the bootstrap function "calculator" on srv: each call
// returns a new Calculator (a session with its own slots).
func Register(srv *arbor.Server) error {
	return arbor.Handle0(srv, "calculator", func(ctx context.Context) (*arbor.Service, error) {
		return NewCalculator(), nil
	})
}

// NewCalculator returns a Calculator service. Its methods, all on one
// reference and so run in the order the client sent them:
//
//	evaluate(expr Expression, slot int) -> Value
//	defFunction(def Definition, slot int) -> Function
//	getOperator(op Operator, slot int) -> Function
//	importFunction(fn Function, slot int) -> Function  (fn: the client's own)
//	forget(slot int) -> bool
//
// A Value has read() -> float64; a Function has call(params []float64) ->
// float64.
func NewCalculator() *arbor.Service {
	s := &session{slots: make(map[int]*entry)}
	svc := arbor.NewService("Calculator")
	mustRegister(arbor.Handle2(svc, "evaluate", s.evaluate))
	mustRegister(arbor.Handle2(svc, "defFunction", s.defFunction))
	mustRegister(arbor.Handle2(svc, "getOperator", s.getOperator))
	mustRegister(arbor.Handle2(svc, "importFunction", s.importFunction))
	mustRegister(arbor.Handle1(svc, "forget", s.forget))
	return svc
}

func mustRegister(err error) {
	if err != nil {
		panic(err) // a duplicate or empty method name: a bug in this file
	}
}

// ---- Values and Functions ----

func valueService(x float64) *arbor.Service {
	svc := arbor.NewService("Value")
	mustRegister(arbor.Handle0(svc, "read", func(ctx context.Context) (float64, error) { return x, nil }))
	return svc
}

func functionService(fn function) *arbor.Service {
	svc := arbor.NewService("Function")
	mustRegister(arbor.Handle1(svc, "call", fn.call))
	return svc
}

// function is what the server can call: an operator, a function defined
// by an expression, or a client's Function reached through its reference.
type function interface {
	call(ctx context.Context, params []float64) (float64, error)
}

type operator Operator

func (op operator) call(ctx context.Context, params []float64) (float64, error) {
	if len(params) != 2 {
		return 0, arbor.Errorf(arbor.InvalidArgument, "%s takes 2 parameters, got %d", string(op), len(params))
	}
	a, b := params[0], params[1]
	switch Operator(op) {
	case Add:
		return a + b, nil
	case Subtract:
		return a - b, nil
	case Multiply:
		return a * b, nil
	case Divide:
		return a / b, nil
	}
	return 0, arbor.Errorf(arbor.InvalidArgument, "unknown operator %q", string(op))
}

// defined is a function defined by defFunction.
type defined struct {
	paramCount int
	body       *node
}

func (f *defined) call(ctx context.Context, params []float64) (float64, error) {
	if len(params) != f.paramCount {
		return 0, arbor.Errorf(arbor.InvalidArgument, "wrong number of parameters: got %d, want %d", len(params), f.paramCount)
	}
	return f.body.eval(ctx, params)
}

// remote is a Function the client passed: calling it calls back into the
// client over the same connection.
type remote struct{ ref *arbor.Ref }

func (r remote) call(ctx context.Context, params []float64) (float64, error) {
	return arbor.Call1[float64](ctx, r.ref, "call", params)
}

// ---- expressions ----

// node is an Expression with its slots resolved, ready to evaluate: a
// Value in a slot has become its number and a Function its implementation,
// so later changes to the slots do not change it.
type node struct {
	kind   Kind
	number float64 // KindLiteral (a literal, or a previous Value's number)
	param  int     // KindParameter
	fn     function
	args   []*node // KindCall
}

func (n *node) eval(ctx context.Context, params []float64) (float64, error) {
	switch n.kind {
	case KindLiteral:
		return n.number, nil
	case KindParameter:
		return params[n.param], nil // checked against the arity when compiled
	}
	if err := ctx.Err(); err != nil { // a client gave up on a long computation
		return 0, err
	}
	args := make([]float64, len(n.args))
	for i, a := range n.args {
		x, err := a.eval(ctx, params)
		if err != nil {
			return 0, err
		}
		args[i] = x
	}
	return n.fn.call(ctx, args)
}

// ---- the session ----

// session is one Calculator: the table of the Values and Functions it
// created, by the slot number the client chose for each.
type session struct {
	mu    sync.Mutex
	slots map[int]*entry
}

// entry is what a slot holds: a value, a function, or the error of the
// call that was to fill it (using it fails with that error, as a broken
// promise would in Cap'n Proto).
type entry struct {
	value float64
	fn    function
	err   error
}

// fill runs build and stores its outcome in slot, which must be free.
func (s *session) fill(slot int, build func() (*entry, error)) (*entry, error) {
	s.mu.Lock()
	switch _, taken := s.slots[slot]; {
	case slot <= 0:
		s.mu.Unlock()
		return nil, arbor.Errorf(arbor.InvalidArgument, "slot %d: slots are positive", slot)
	case taken:
		s.mu.Unlock()
		return nil, arbor.Errorf(arbor.AlreadyExists, "slot %d is in use", slot)
	case len(s.slots) >= MaxSlots:
		s.mu.Unlock()
		return nil, arbor.Errorf(arbor.ResourceExhausted, "too many slots (limit %d): forget some", MaxSlots)
	}
	s.slots[slot] = &entry{err: arbor.Errorf(arbor.Unavailable, "slot %d is being filled", slot)}
	s.mu.Unlock()

	e, err := build()
	if err != nil {
		e = &entry{err: err}
	}
	s.mu.Lock()
	s.slots[slot] = e
	s.mu.Unlock()
	return e, err
}

func (s *session) lookup(slot int) (*entry, error) {
	s.mu.Lock()
	e := s.slots[slot]
	s.mu.Unlock()
	switch {
	case e == nil:
		return nil, arbor.Errorf(arbor.NotFound, "slot %d is empty", slot)
	case e.err != nil:
		return nil, arbor.Errorf(arbor.CodeOf(e.err), "slot %d: %v", slot, e.err)
	}
	return e, nil
}

// compile resolves e's slots for a function of paramCount parameters (0
// for evaluate).
func (s *session) compile(e Expression, paramCount int) (*node, error) {
	switch e.Kind {
	case KindLiteral:
		return &node{kind: KindLiteral, number: e.Literal}, nil
	case KindPrevious:
		v, err := s.lookup(e.Slot)
		if err != nil {
			return nil, err
		}
		if v.fn != nil {
			return nil, arbor.Errorf(arbor.InvalidArgument, "slot %d holds a Function, not a Value", e.Slot)
		}
		return &node{kind: KindLiteral, number: v.value}, nil
	case KindParameter:
		if e.Parameter < 0 || e.Parameter >= paramCount {
			return nil, arbor.Errorf(arbor.InvalidArgument, "parameter %d out of range (the function has %d)", e.Parameter, paramCount)
		}
		return &node{kind: KindParameter, param: e.Parameter}, nil
	case KindCall:
		f, err := s.lookup(e.Slot)
		if err != nil {
			return nil, err
		}
		if f.fn == nil {
			return nil, arbor.Errorf(arbor.InvalidArgument, "slot %d holds a Value, not a Function", e.Slot)
		}
		n := &node{kind: KindCall, fn: f.fn, args: make([]*node, len(e.Params))}
		for i, p := range e.Params {
			if n.args[i], err = s.compile(p, paramCount); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
	return nil, arbor.Errorf(arbor.InvalidArgument, "unknown expression kind %q", e.Kind)
}

func (s *session) evaluate(ctx context.Context, expr Expression, slot int) (*arbor.Service, error) {
	e, err := s.fill(slot, func() (*entry, error) {
		n, err := s.compile(expr, 0)
		if err != nil {
			return nil, err
		}
		x, err := n.eval(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w", err)
		}
		return &entry{value: x}, nil
	})
	if err != nil {
		return nil, err
	}
	return valueService(e.value), nil
}

func (s *session) defFunction(ctx context.Context, def Definition, slot int) (*arbor.Service, error) {
	e, err := s.fill(slot, func() (*entry, error) {
		if def.ParamCount < 0 {
			return nil, arbor.Errorf(arbor.InvalidArgument, "negative parameter count %d", def.ParamCount)
		}
		body, err := s.compile(def.Body, def.ParamCount)
		if err != nil {
			return nil, err
		}
		return &entry{fn: &defined{paramCount: def.ParamCount, body: body}}, nil
	})
	if err != nil {
		return nil, err
	}
	return functionService(e.fn), nil
}

func (s *session) getOperator(ctx context.Context, op Operator, slot int) (*arbor.Service, error) {
	e, err := s.fill(slot, func() (*entry, error) {
		switch op {
		case Add, Subtract, Multiply, Divide:
			return &entry{fn: operator(op)}, nil
		}
		return nil, arbor.Errorf(arbor.InvalidArgument, "unknown operator %q", string(op))
	})
	if err != nil {
		return nil, err
	}
	return functionService(e.fn), nil
}

func (s *session) importFunction(ctx context.Context, fn *arbor.Ref, slot int) (*arbor.Service, error) {
	e, err := s.fill(slot, func() (*entry, error) {
		if fn == nil {
			return nil, arbor.NewError(arbor.InvalidArgument, "importFunction: no function")
		}
		// The slot keeps the reference: it is released when the session
		// is collected (or the connection closes), not on forget, because
		// functions defined with it may still call it.
		return &entry{fn: remote{fn}}, nil
	})
	if err != nil {
		fn.Close()
		return nil, err
	}
	return functionService(e.fn), nil
}

func (s *session) forget(ctx context.Context, slot int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.slots[slot]
	delete(s.slots, slot)
	return ok, nil
}
