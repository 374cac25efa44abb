package arbor

import (
	"context"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

// Caller is what calls are made through: a *Client (one server), a *Ref
// (a capability), a cluster client, or a generated client's target. Every
// typed helper (CallN, GoN, CallServerStream, OpenClientStream,
// OpenBidiStream, and the request-tree helpers of package tree) takes a
// Caller and goes through its Call method, so a Caller's interceptors and
// options apply to every kind of call.
//
// Implementations that wrap another Caller (to pick a node, say) pass the
// Request and the Response through unchanged.
type Caller interface {
	Call(ctx context.Context, req *Request) (*Response, error)
}

// CallFunc is one step of a call: the network at the end of a client's
// interceptor chain, the handler at the end of a server's. A CallFunc is a
// Caller.
type CallFunc func(ctx context.Context, req *Request) (*Response, error)

// Call calls f.
func (f CallFunc) Call(ctx context.Context, req *Request) (*Response, error) { return f(ctx, req) }

// Interceptor wraps a CallFunc, net/http middleware style: it may look at
// or change the request, answer it itself, or look at the response on
// the way back. Interceptors see every kind of call: check Request.Kind,
// and wrap Request.Stream (server) or Response.Stream (client) to watch a
// stream's messages. A client's chain returns once a stream has opened
// or a promise was sent: Response.OnEnd follows them to their end. As with an http.Handler, a call's Request is valid
// until the interceptor returns: on a server its Args live in the
// connection's buffers, which serve other calls afterwards, so next must
// have returned by then (run it on another goroutine only to wait for it).
type Interceptor func(next CallFunc) CallFunc

// chain composes interceptors so that the first given is the outermost.
func chain(ics []Interceptor, final CallFunc) CallFunc {
	f := final
	for i := len(ics) - 1; i >= 0; i-- {
		f = ics[i](f)
	}
	return f
}

// Kind is the shape of a function or call.
type Kind string

// The kinds.
const (
	KindUnary        Kind = "unary"
	KindServerStream Kind = "server-stream"
	KindClientStream Kind = "client-stream"
	KindBidiStream   Kind = "bidi-stream"
)

// IsStream reports whether k is one of the stream kinds.
func (k Kind) IsStream() bool { return k != KindUnary && k != "" }

// Request is one call as Callers and interceptors see it.
type Request struct {
	// ID is the function id, or the method name when the call is on a
	// capability.
	ID   string
	Kind Kind
	// Async is set on a client for calls sent without waiting (GoN): the
	// Response then holds a pending answer that promises read, and the
	// server keeps the answer for calls pipelined on it.
	Async bool
	// Metadata: outgoing on a client (WithMetadata's pairs), incoming on
	// a server.
	Metadata Metadata
	// Args is the msgpack array of arguments. An interceptor may replace
	// it.
	Args []byte
	// Peer is the other end: on a server the caller; on a client the
	// server of the connection last used.
	Peer Peer
	// Target is the capability a client calls a method of (nil for a
	// function of the server).
	Target *Ref
	// Service names, on a server, the service a method call is addressed
	// to ("" for a function of the server).
	Service string
	// Stream is, on a server, the stream of a streaming call; an
	// interceptor may wrap it.
	Stream Stream

	// Set while encoding arguments: the promises they use (which tie the
	// call to the promises' connection) and the capabilities they hold.
	promises []promiseUse
	caps     *capEncoder
	// On a server: the incoming call, the handler it runs, and the
	// interceptors of its service.
	in    *conn.Incoming
	h     *handler
	inner CallFunc
	// runs, behind interceptors, collects the result tables the runs of
	// the handler exported (shared by copies of the request).
	runs *resultRuns
}

// Bound reports the Caller a request must be sent through because its
// arguments use promises made there (a promise chain stays on the
// connection that holds its answers), or nil. A Caller that picks among
// several (a cluster client) sends such a request through it.
func (r *Request) Bound() Caller {
	for _, u := range r.promises {
		if u.p.via != nil {
			return u.p.via
		}
	}
	return nil
}

// Response is a call's outcome as Callers and interceptors see it.
type Response struct {
	// Result is the msgpack-encoded result of a unary call (or of a
	// client stream, on a server).
	Result []byte
	// Stream is, on a client, the stream a streaming call opened; an
	// interceptor may wrap it.
	Stream Stream

	caps  []wire.CapDescriptor // the result's capability table
	local []*Ref               // or its capabilities, from an in-process call
	cc    *conn.Conn           // the connection the call ran on
	owner *Client              // whose interceptors references in the result use
	async *conn.Async          // Async calls: the pending answer
	// localRes holds an in-process Async call's capabilities.
	localRes *localResult
	raw      *conn.Stream // streams: the connection's own stream
}

// OnEnd arranges for fn to run once, with the call's outcome (nil: it
// succeeded), when the call is over: for a unary call that is now, for an
// Async call (a promise) when its answer arrives or it fails, for a
// stream when it has ended. It is how a client interceptor follows a
// promise or a stream past the return of its chain (metrics and tracing
// interceptors record them there). A Response an interceptor made
// itself has ended: fn runs at once. fn may run on the connection's
// reader goroutine: it must be quick and must never block.
func (r *Response) OnEnd(fn func(err error)) {
	switch {
	case r.async != nil:
		r.async.OnDone(func(err error) { fn(fromStatus(err)) })
	case r.raw != nil:
		r.raw.OnDone(func(err error) { fn(fromStatus(err)) })
	default:
		fn(nil)
	}
}

// Stream is a stream's encoded messages, as interceptors see them. Recv
// returns io.EOF after the last message.
type Stream interface {
	Context() context.Context
	Send(msg []byte) error
	Recv() ([]byte, error)
	CloseSend() error
}

// decoder returns the decoder of the result's capabilities, or nil.
func (r *Response) decoder() *capDecoder {
	switch {
	case len(r.caps) > 0:
		return &capDecoder{cc: r.cc, table: r.caps, owner: r.owner}
	case len(r.local) > 0:
		return localDecoder(r.local)
	}
	return nil
}
