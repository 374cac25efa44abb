package calculator

import (
	"context"
	"fmt"

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
// Calculator.Expression). Its capabilities travel inside it, as in Cap'n
// Proto: Previous is a Value and Function a Function, which may not exist
// yet (a promised capability from an earlier call) and may be the
// client's own (NewFunction).
type Expression struct {
	Kind      Kind         `msgpack:"kind"`
	Literal   float64      `msgpack:"literal,omitempty"`
	Previous  *arbor.Ref   `msgpack:"previous,omitempty"`
	Parameter int          `msgpack:"parameter,omitempty"`
	Function  *arbor.Ref   `msgpack:"function,omitempty"`
	Params    []Expression `msgpack:"params,omitempty"`
}

// Definition is the argument of defFunction: a body that may use
// parameters 0..ParamCount-1.
type Definition struct {
	ParamCount int        `msgpack:"paramCount"`
	Body       Expression `msgpack:"body"`
}

// MaxNodes bounds the nodes of one expression.
const MaxNodes = 10000

// Bootstrap makes a server's bootstrap service a new Calculator for each
// client that asks (arbor.Client.Bootstrap): pass it to arbor.NewServer.
func Bootstrap() arbor.ServerOption {
	return arbor.WithBootstrapFunc(func(ctx context.Context) (*arbor.Service, error) { return NewCalculator(), nil })
}

// NewCalculator returns a Calculator service. Its methods:
//
//	evaluate(expr Expression) -> Value
//	defFunction(def Definition) -> Function
//	getOperator(op Operator) -> Function
//
// A Value has read() -> float64; a Function has call(params []float64) ->
// float64.
func NewCalculator() *arbor.Service {
	svc := arbor.NewService("Calculator")
	mustRegister(arbor.Handle1(svc, "evaluate", evaluate))
	mustRegister(arbor.Handle1(svc, "defFunction", defFunction))
	mustRegister(arbor.Handle1(svc, "getOperator", getOperator))
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

// ref is a Function reached through its capability: one of the server's
// own (called in process) or the client's (a call back into it).
type ref struct{ r *arbor.Ref }

func (f ref) call(ctx context.Context, params []float64) (float64, error) {
	return arbor.Call1[float64](ctx, f.r, "call", params)
}

// ---- expressions ----

// node is an Expression ready to evaluate: a previous Value has become
// its number, and a Function's capability is held for calls.
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

// compiler turns an Expression into nodes, collecting the capabilities the
// nodes keep (Functions) and closing the others (Values, read at once).
type compiler struct {
	paramCount int
	nodes      int
	kept       []*arbor.Ref
}

func (c *compiler) compile(ctx context.Context, e Expression) (*node, error) {
	if c.nodes++; c.nodes > MaxNodes {
		return nil, arbor.Errorf(arbor.ResourceExhausted, "expression of more than %d nodes", MaxNodes)
	}
	switch e.Kind {
	case KindLiteral:
		return &node{kind: KindLiteral, number: e.Literal}, nil
	case KindPrevious:
		if e.Previous == nil {
			return nil, arbor.NewError(arbor.InvalidArgument, "previous: no Value")
		}
		// Cap'n Proto's sample reads the Value: in process when it is one
		// of this server's, a call back when it is the client's.
		x, err := arbor.Call0[float64](ctx, e.Previous, "read")
		if err != nil {
			return nil, err
		}
		return &node{kind: KindLiteral, number: x}, nil
	case KindParameter:
		if e.Parameter < 0 || e.Parameter >= c.paramCount {
			return nil, arbor.Errorf(arbor.InvalidArgument, "parameter %d out of range (the function has %d)", e.Parameter, c.paramCount)
		}
		return &node{kind: KindParameter, param: e.Parameter}, nil
	case KindCall:
		if e.Function == nil {
			return nil, arbor.NewError(arbor.InvalidArgument, "call: no Function")
		}
		c.kept = append(c.kept, e.Function)
		n := &node{kind: KindCall, fn: ref{e.Function}, args: make([]*node, len(e.Params))}
		for i, p := range e.Params {
			var err error
			if n.args[i], err = c.compile(ctx, p); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
	return nil, arbor.Errorf(arbor.InvalidArgument, "unknown expression kind %q", e.Kind)
}

// refs lists the capabilities an expression holds.
func refs(e Expression, out []*arbor.Ref) []*arbor.Ref {
	if e.Previous != nil {
		out = append(out, e.Previous)
	}
	if e.Function != nil {
		out = append(out, e.Function)
	}
	for _, p := range e.Params {
		out = refs(p, out)
	}
	return out
}

// closeAll closes each reference once (one capability may appear twice).
func closeAll(rs []*arbor.Ref) {
	for _, r := range rs {
		r.Close()
	}
}

func evaluate(ctx context.Context, expr Expression) (*arbor.Service, error) {
	defer closeAll(refs(expr, nil)) // nothing outlives the evaluation
	c := compiler{}
	n, err := c.compile(ctx, expr)
	if err != nil {
		return nil, err
	}
	x, err := n.eval(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return valueService(x), nil
}

func defFunction(ctx context.Context, def Definition) (*arbor.Service, error) {
	all := refs(def.Body, nil)
	if def.ParamCount < 0 {
		closeAll(all)
		return nil, arbor.Errorf(arbor.InvalidArgument, "negative parameter count %d", def.ParamCount)
	}
	c := compiler{paramCount: def.ParamCount}
	body, err := c.compile(ctx, def.Body)
	if err != nil {
		closeAll(all)
		return nil, err
	}
	// The Functions the body calls live as long as the defined function:
	// closed when the client releases it. Values were read: closed now.
	keep := make(map[*arbor.Ref]bool, len(c.kept))
	for _, r := range c.kept {
		keep[r] = true
	}
	for _, r := range all {
		if !keep[r] {
			r.Close()
		}
	}
	svc := functionService(&defined{paramCount: def.ParamCount, body: body})
	return svc.OnRelease(func() { closeAll(c.kept) }), nil
}

func getOperator(ctx context.Context, op Operator) (*arbor.Service, error) {
	switch op {
	case Add, Subtract, Multiply, Divide:
		return functionService(operator(op)), nil
	}
	return nil, arbor.Errorf(arbor.InvalidArgument, "unknown operator %q", string(op))
}
