package arbor

import "context"

// Stream is a stream's raw message channel as stream interceptors see it:
// msgpack-encoded messages in both directions.
type Stream interface {
	Context() context.Context
	// Send sends one encoded message.
	Send(msg []byte) error
	// Recv returns the next encoded message or io.EOF.
	Recv() ([]byte, error)
	// CloseSend half-closes this side.
	CloseSend() error
}

// StreamRequest describes a streaming call to stream interceptors.
type StreamRequest struct {
	Function string
	Kind     string // on the client: empty (the client does not know it)
	Metadata Metadata
	Args     []byte // the encoded initial arguments
	Peer     Peer
}

// StreamHandlerFunc runs a streaming function on the server; the result is
// the encoded final result (client streams) or nil.
type StreamHandlerFunc func(ctx context.Context, req *StreamRequest, s Stream) ([]byte, error)

// StreamOpenFunc opens a stream on the client.
type StreamOpenFunc func(ctx context.Context, req *StreamRequest) (Stream, error)

// StreamInterceptor wraps streaming calls: Handler wraps the server side,
// Open the client side. Either may be nil. To watch messages, return a
// Stream that wraps the one given.
type StreamInterceptor struct {
	Handler func(next StreamHandlerFunc) StreamHandlerFunc
	Open    func(next StreamOpenFunc) StreamOpenFunc
}

// WithStreamInterceptors adds stream interceptors; the first is the
// outermost.
func WithStreamInterceptors(ics ...StreamInterceptor) Option {
	return func(o *options) { o.streamInterceptors = append(o.streamInterceptors, ics...) }
}

func chainStreamHandler(ics []StreamInterceptor, final StreamHandlerFunc) StreamHandlerFunc {
	f := final
	for i := len(ics) - 1; i >= 0; i-- {
		if ics[i].Handler != nil {
			f = ics[i].Handler(f)
		}
	}
	return f
}

func chainStreamOpen(ics []StreamInterceptor, final StreamOpenFunc) StreamOpenFunc {
	f := final
	for i := len(ics) - 1; i >= 0; i-- {
		if ics[i].Open != nil {
			f = ics[i].Open(f)
		}
	}
	return f
}
