// Package arbor is an RPC framework in which calls are values.
//
// A Server holds functions registered by id with typed Go signatures; a
// Client calls them over one multiplexed connection. Arguments and results
// travel as msgpack (package value says how Go types map). Deadlines travel
// with each call, cancelling a caller's context cancels the handler's, and
// errors carry a code, a message, details and a retryable flag on both
// sides of the wire.
//
//	srv := arbor.NewServer()
//	err := arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
//	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
//
//	c, err := arbor.Dial(ctx, l.URL())
//	sum, err := arbor.Call2[int](ctx, c, "add", 2, 3)
//
// # One call path
//
// Every call leaves through a Caller: a *Client (one server), a *Ref (a
// capability), a cluster client, or a generated client's target. The
// typed helpers all take one, and all go through its Call method, so the
// Caller's interceptors and options (WithInterceptors, WithBearerToken)
// apply to every kind of call. On a server, the same Interceptor type sees
// every incoming call: functions, methods of services, streams, and the
// functions request trees run (Server.Invoke).
//
// # The families
//
//   - Unary: Handle0, Handle1, Handle2, Handle3 register; Call0, Call1,
//     Call2, Call3 call (CallAny with plain values, CallRaw with encoded
//     ones); HandleRaw registers a function over encoded values.
//   - Promises: Go0, Go1, Go2, Go3 send without waiting and return a
//     *Promise; a promise (or Field of it) is an argument of further calls
//     before it resolves, so a chain of dependent calls costs one round
//     trip (promise pipelining).
//   - Capabilities: a handler returns a *Service (NewService, methods
//     registered with HandleN) or takes a *Ref; a *Ref is a Caller, so the
//     same helpers call its methods. PipelineRef calls methods on a
//     capability that a promise will return. Refs and Services may sit
//     anywhere in a value: struct fields, slices, maps.
//   - Streams: HandleServerStream, HandleClientStream, HandleBidiStream
//     register; CallServerStream, OpenClientStream, OpenBidiStream call;
//     Sender and Receiver carry typed messages with flow control.
//   - Request trees (calls whose arguments are calls, resolved and cached
//     by content on the server): package tree.
//
// The arity helpers (…0 to …3) exist because Go generics have no variadic
// type parameters; everything else has one form. Type parameters always
// come result (or what a stream sends) first, then arguments in order, so
// Call1[int](ctx, c, id, a) infers the rest.
//
// # Where handlers run
//
// Calls run concurrently, each on a goroutine of a per-connection pool,
// so a handler may block. A function whose calls have proven quick (a
// long streak under 10 µs) runs instead on its connection's reader, as a
// hand-written server would, and the answers of a burst leave in one
// write: for the smallest functions (an echo at 64 callers in bench/)
// that nearly halves the CPU per call. If such a call blocks after all, a watchdog hands the reading to
// a new goroutine within a millisecond or two, and a function whose calls
// turn slow goes back to the pool. Nothing changes for handlers, which
// must still not rely on the goroutine they run on.
//
// # Large values
//
// A []byte or string of 1 KiB or more, as the last argument of CallN or
// as a handler's result, is not copied into the encoded call or result:
// the connection copies it once into its write buffer, or over 64 KiB
// sends it from where it lies. (Behind interceptors, which see the whole
// request or result, it is encoded as any value.) A caller must not
// change such an argument until the call returns, nor a handler such a
// result after it returned. A large call or result is read into one buffer of its size,
// and a []byte decoded from it points into that buffer, which is the
// receiver's to keep. So a 1 MiB echo allocates about twice the payload
// in all, one buffer on each side, and copies it nowhere but in the
// kernel.
//
// # Metadata
//
// WithMetadata adds key/value pairs to a call; IncomingMetadata reads
// them in the handler, SetTrailer sends trailers back and CaptureTrailer
// receives them. Calls that arrive by another protocol (package bridge)
// run through Server.Invoke and Server.InvokeStream with a context from
// InboundContext, and InboundTrailer gives the protocol the trailers to
// send back.
//
// # Options
//
// ServerOption and ClientOption are different types, so a server option
// given to Dial does not compile; an Option works on both sides. Config
// gathers every setting in one value (WithConfig); the With… options set
// the same fields.
//
// # What must be closed
//
// Close a Client (or its calls fail only when the process ends), Close or
// Shutdown a Server, Close a *Ref you got (the peer keeps the service
// until then), read a stream to io.EOF or Close it, and Wait for or
// Release a promise (the server keeps its answer for pipelined calls
// until then). References and promises dropped without that are released
// when the garbage collector finds them, with a warning in the log: a
// safety net, not the mechanism; nothing is ever cancelled by the GC.
//
// Addresses are tcp://host:port, tls://host:port, quic://host:port,
// unix:/path and mem:name (in-process, for tests; package arbortest makes
// a ready pair); see package transport.
package arbor
