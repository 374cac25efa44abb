// Package arbor is an RPC framework in which calls are values.
//
// A Server holds functions registered by id with typed Go signatures
// (Handle0..Handle3); a Client calls them over one multiplexed connection
// with typed helpers (Call0..Call3). Arguments and results travel as
// msgpack. Deadlines travel with each call, cancelling a caller's context
// cancels the handler's, and errors carry a code, a message, details and a
// retryable flag on both sides of the wire.
//
//	srv := arbor.NewServer()
//	arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
//	go srv.ListenAndServe(ctx, "tcp://127.0.0.1:7450")
//
//	c, err := arbor.Dial(ctx, "tcp://127.0.0.1:7450")
//	sum, err := arbor.Call2[int](ctx, c, "add", 2, 3)
//
// Beyond unary calls: typed server, client and bidirectional streams with
// flow control (HandleServerStream, CallServerStream, ...); promises
// (Go0..Go3) that are arguments of further calls before they resolve, so
// a chain of dependent calls costs one round trip; services passed by
// reference both ways (Service, Ref, CallRef1, PipelineRef); and request
// trees resolved and cached by content on the server (EnableResolution,
// Resolve, package request).
//
// Addresses are tcp://host:port, tls://host:port, quic://host:port,
// unix:/path and mem:name (in-process, for tests); see package transport.
package arbor
