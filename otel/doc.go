// Package arborotel traces Arbor calls with OpenTelemetry: a span per
// call a client makes and per call a server handles, joined across
// processes by W3C trace context (traceparent, tracestate) carried in
// the calls' metadata (or by the propagator Config names: B3, baggage
// beside W3C …), and a span per request of a request tree, marked cache
// hit or miss, so that a tree is one trace.
//
//	t := arborotel.New(arborotel.Config{TracerProvider: tp})
//	srv := arbor.NewServer(arbor.WithObserver(t.Observer()))
//	e, _ := tree.Enable(srv, tree.Config{Observer: t.TreeObserver()})
//	c, _ := arbor.Dial(ctx, addr, arbor.WithObserver(t.Observer()))
//
// Observer hooks the connections (every call that crosses the wire, no
// allocation of its own); ServerInterceptor and ClientInterceptor do the
// same through interceptors, for calls run in process and for any Caller.
//
// Unsampled traces cost little: a call whose context carries an
// unsampled span propagates that span's context and starts no span of
// its own, and a server that receives an unsampled parent carries it to
// the handler without starting one. With the default propagator (W3C
// trace context alone) that costs no allocation: the traceparents come
// from small caches.
//
// It lives in a module of its own so that OpenTelemetry enters only the
// builds that import it.
package arborotel
