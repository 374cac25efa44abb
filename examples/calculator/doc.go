// Package calculator is Arbor's port of the calculator sample of Cap'n
// Proto RPC (c++/samples/calculator-{client,server}.c++): a server that
// evaluates arithmetic expressions, where the operators, the results and
// the functions the client defines are all capabilities, and where a
// client that never waits between calls gets a whole computation done in
// one network round trip.
//
// # From Cap'n Proto to Arbor
//
//	Cap'n Proto                              Arbor (this package)
//	-----------                              --------------------
//	interface Calculator                     NewCalculator(): an *arbor.Service
//	bootstrap capability                     server function "calculator" (Register)
//	interface Value { read }                 a Service with "read" () -> float64
//	interface Function { call }              a Service with "call" ([]float64) -> float64
//	evaluate(expression) -> value            "evaluate" (Expression, slot) -> Value
//	defFunction(paramCount, body) -> func    "defFunction" (Definition, slot) -> Function
//	getOperator(op) -> func                  "getOperator" (Operator, slot) -> Function
//	struct Expression (a union)              Expression, with Kind saying which member is set
//	Function::Server on the client           NewFunction, then "importFunction" (fn, slot) -> Function
//	request.send()                           arbor.Go2 on a *arbor.Ref: returns a *arbor.Promise at once
//	promise.getValue() (a pipelined cap)     arbor.PipelineRef(promise)
//	.readRequest().send() on it              arbor.Go0(ctx, pipelineRef, "read")
//	.wait(waitScope)                         Promise.Wait
//
// Session, Value and Function wrap those calls for a client; the
// Example is the sample client, step by step.
//
// # Slots: capabilities inside an expression
//
// In Cap'n Proto an Expression holds capabilities: a previousResult is a
// Value, a call names its Function. In Arbor a capability (an
// *arbor.Service sent, an *arbor.Ref received) can only be a whole
// argument or result, not a field of a struct, and a reference cannot be
// passed back to the side that exported it. So an Expression names Values
// and Functions by a slot: every call that creates one (evaluate,
// defFunction, getOperator, importFunction) takes, besides its Cap'n Proto
// arguments, a slot number the client chooses, and the server's session
// records the new Value or Function under it. Choosing the number on the
// client side is what keeps pipelining: like a Cap'n Proto question id, a
// slot can be used in the next call before the call that fills it has
// returned. Calls on one reference run in the order they were sent, so
// by the time evaluate reads slot 7, the getOperator that fills it has
// run; if that call failed, the slot holds its error, and using it fails
// the same way, as a broken promise would.
//
// The call still returns the Value or Function as a capability, so that
// the client can read() a Value and call() a Function directly.
//
// When the session resolves an Expression it replaces each slot by what
// it holds: a function defined with f keeps calling the same f even if
// the client later closes f (Function.Close makes the server forget the
// slot and release the capability).
//
// # Callbacks
//
// The client's own Function (the sample's PowerFunction) is an
// *arbor.Service made by NewFunction. Session.Import passes it to
// "importFunction", which Arbor exports on the connection: the server
// receives an *arbor.Ref and, when an expression calls it, calls back
// into the client over the same connection (arbor.Call1 on the *arbor.Ref). As in the
// sample, such an evaluation takes two round trips.
//
// # Round trips
//
// Every Session method sends one call and returns without waiting; only
// Result.Wait waits. Evaluating a literal and reading it, getting two
// operators and evaluating 123 + 45 - 67 with them, defining f and g and
// calling them: each takes one round trip, as in the sample
// (TestRoundTrips measures it through a proxy that delays every packet).
//
// # Differences from the sample
//
//   - The server evaluates the parameters of a call one after the other,
//     not concurrently; only callbacks into the client cost round trips.
//   - Arbor runs the calls on one reference one at a time, not only in
//     order: while evaluate waits for a client's Function, the session
//     serves no other call, so that Function must not call back into the
//     same session (it would wait for itself until its deadline).
//   - Values and Functions stay on the server until closed
//     (Value.Close, Function.Close, Session.Close) or until the
//     connection closes.
package calculator
