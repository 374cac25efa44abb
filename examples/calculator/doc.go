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
//	bootstrap capability                     arbor.WithBootstrapFunc (Bootstrap), arbor.BootstrapFunction
//	interface Value { read }                 a Service with "read" () -> float64
//	interface Function { call }              a Service with "call" ([]float64) -> float64
//	evaluate(expression) -> value            "evaluate" (Expression) -> Value
//	defFunction(paramCount, body) -> func    "defFunction" (Definition) -> Function
//	getOperator(op) -> func                  "getOperator" (Operator) -> Function
//	struct Expression (a union)              Expression, with Kind saying which member is set
//	  previousResult :Value, call.function   *arbor.Ref fields: capabilities inside the struct
//	Function::Server on the client           NewFunction: the client's own service, as a Ref
//	request.send()                           arbor.Go1 on a *arbor.Ref: returns a *arbor.Promise at once
//	promise.getValue() (a pipelined cap)     arbor.PipelineRef(promise)
//	.readRequest().send() on it              arbor.Go0(ctx, pipelineRef, "read")
//	.wait(waitScope)                         Promise.Wait
//
// Session, Value and Function wrap those calls for a client; the
// Example is the sample client, step by step.
//
// # Capabilities inside expressions
//
// As in Cap'n Proto, an Expression holds capabilities: Previous is a
// Value, Function a Function. They may not exist yet: a Value that
// evaluate has not returned is a promised capability (arbor.PipelineRef),
// and passing it back to the server that will produce it costs nothing,
// the server finds its own object when the earlier call is done. A
// reference that comes back to the server that exported it is that
// object itself, called in process; one that is the client's own (a
// NewFunction) is called back over the connection, and one from another
// server (TestAnotherServersValue) is reached through the client, which
// re-exports it.
//
// A function defined with defFunction keeps the Functions its body calls
// until the client releases it (arbor.Service.OnRelease): closing one of
// them on the client does not break functions defined with it.
//
// # Round trips
//
// Every Session method sends one call and returns without waiting; only
// Result.Wait waits. Evaluating a literal and reading it, getting two
// operators and evaluating 123 + 45 - 67 with them, defining f and g and
// calling them: each takes one round trip, as in the sample
// (TestRoundTrips measures it through a proxy that delays every packet).
// A callback into the client costs one more.
//
// # Differences from the sample
//
//   - The server evaluates the parameters of a call one after the other,
//     not concurrently; only callbacks into the client cost round trips.
//   - Values and Functions stay on the server until released (Close) or
//     until the connection closes.
package calculator
