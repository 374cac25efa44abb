package arbor

import "context"

// Request is a unary call as interceptors see it. Args is the msgpack array
// of arguments; an interceptor may replace it.
type Request struct {
	Function string
	Metadata Metadata
	Args     []byte
	// Peer is the caller (server side) or the server (client side: the
	// current connection's, which a retry may replace).
	Peer Peer
}

// Response is the encoded (msgpack) result of a unary call.
type Response struct {
	Result []byte
}

// UnaryFunc is one step of a unary call: the handler at the end of a
// server's chain, the network call at the end of a client's.
type UnaryFunc func(ctx context.Context, req *Request) (*Response, error)

// Interceptor wraps a UnaryFunc, net/http middleware style: it may inspect
// or change the request, short-circuit with an error, or look at the
// response on the way back.
type Interceptor func(next UnaryFunc) UnaryFunc

// chain composes interceptors so that the first given is the outermost.
func chain(ics []Interceptor, final UnaryFunc) UnaryFunc {
	f := final
	for i := len(ics) - 1; i >= 0; i-- {
		f = ics[i](f)
	}
	return f
}
