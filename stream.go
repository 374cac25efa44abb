package arbor

import (
	"context"
	"fmt"
	"io"
	"unsafe"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// Kinds of functions, as introspection shows them.
const (
	KindUnary        = "unary"
	KindServerStream = "server-stream"
	KindClientStream = "client-stream"
	KindBidiStream   = "bidi-stream"
)

// Sender sends typed messages on a stream. Send blocks while the receiver's
// flow-control window is full.
type Sender[M any] struct {
	st    Stream
	codec *value.Codec[M]
	buf   []byte
}

// Send encodes and sends one message.
func (s *Sender[M]) Send(m M) error {
	b, err := s.codec.Append(s.buf[:0], m)
	if err != nil {
		return status.Wrap(InvalidArgument, status.ErrSerialization, err, "encoding a stream message")
	}
	s.buf = b
	return streamError(s.st.Send(b))
}

// Receiver receives typed messages from a stream.
type Receiver[M any] struct {
	st    Stream
	codec *value.Codec[M]
	bytes bool // M is []byte: alias the received buffer instead of copying
}

// Recv returns the next message, io.EOF after the last one, or the error
// that ended the stream.
func (r *Receiver[M]) Recv() (M, error) {
	var zero M
	b, err := r.st.Recv()
	if err != nil {
		return zero, streamError(err)
	}
	rd := value.NewReader(b)
	if r.bytes {
		// Each message arrives in a buffer of its own, so a []byte message
		// can point into it: one copy fewer per message.
		var m M
		if !rd.ReadNil() {
			p, err := rd.ReadStringBytes()
			if err != nil {
				return zero, status.Wrap(InvalidArgument, status.ErrSerialization, err, "decoding a stream message as bytes")
			}
			*(*[]byte)(unsafe.Pointer(&m)) = p
		}
		return m, nil
	}
	m, err := r.codec.Decode(&rd)
	if err != nil {
		return zero, status.Wrap(InvalidArgument, status.ErrSerialization, err, "decoding a stream message as "+r.codec.TypeName())
	}
	return m, nil
}

// streamError marks stream failures with the stream category, keeping
// io.EOF as is.
func streamError(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	se := status.FromError(err)
	if se.Category == nil {
		c := *se
		c.Category = status.ErrStream
		return &c
	}
	return se
}

func newSender[M any](st Stream) *Sender[M] {
	return &Sender[M]{st: st, codec: value.For[M]()}
}

func newReceiver[M any](st Stream) *Receiver[M] {
	_, isBytes := any((*M)(nil)).(*[]byte)
	return &Receiver[M]{st: st, codec: value.For[M](), bytes: isBytes}
}

// ---- server side ----

// HandleServerStream registers fn as a server-streaming function: it takes
// one argument and sends any number of messages; returning ends the stream
// (with the error, if any).
func HandleServerStream[A, M any](s Registrar, id string, fn func(ctx context.Context, a A, out *Sender[M]) error) error {
	ca := value.For[A]()
	h := newHandler(id, "stream "+value.For[M]().TypeName(), ca.TypeName())
	h.info.Kind = KindServerStream
	h.stream = func(ctx context.Context, st Stream, args, out []byte) ([]byte, error) {
		r := value.NewReader(args)
		if err := h.arity(&r); err != nil {
			return nil, err
		}
		a, err := ca.Decode(&r)
		if err != nil {
			return nil, h.argError(0, err)
		}
		return value.AppendNil(out), fn(ctx, a, newSender[M](st))
	}
	return s.register(h)
}

// HandleClientStream registers fn as a client-streaming function: it
// receives messages until io.EOF and returns one result.
func HandleClientStream[M, R any](s Registrar, id string, fn func(ctx context.Context, in *Receiver[M]) (R, error)) error {
	h := newHandler(id, value.For[R]().TypeName(), "stream "+value.For[M]().TypeName())
	h.info.Kind = KindClientStream
	h.stream = func(ctx context.Context, st Stream, args, out []byte) ([]byte, error) {
		res, err := fn(ctx, newReceiver[M](st))
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, out, res)
	}
	return s.register(h)
}

// HandleBidiStream registers fn as a bidirectional streaming function:
// it receives and sends independently; returning ends the stream.
func HandleBidiStream[I, O any](s Registrar, id string, fn func(ctx context.Context, in *Receiver[I], out *Sender[O]) error) error {
	h := newHandler(id, "stream "+value.For[O]().TypeName(), "stream "+value.For[I]().TypeName())
	h.info.Kind = KindBidiStream
	h.stream = func(ctx context.Context, st Stream, args, out []byte) ([]byte, error) {
		return value.AppendNil(out), fn(ctx, newReceiver[I](st), newSender[O](st))
	}
	return s.register(h)
}

// serveStream runs a streaming handler for an incoming stream, through the
// server's stream interceptors.
func (s *Server) serveStream(ctx context.Context, h *handler, in *conn.Incoming, out []byte) ([]byte, error) {
	if h.stream == nil {
		return nil, status.Errorf(InvalidArgument, "%s is a unary function; call it without a stream", h.info.ID)
	}
	if len(s.opts.streamInterceptors) == 0 {
		return h.stream(ctx, in.Stream, in.Args, out)
	}
	req := &StreamRequest{Function: h.info.ID, Kind: h.info.Kind, Metadata: Metadata(in.Metadata), Args: in.Args}
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	final := func(ctx context.Context, req *StreamRequest, st Stream) ([]byte, error) {
		return h.stream(ctx, st, req.Args, nil)
	}
	res, err := chainStreamHandler(s.opts.streamInterceptors, final)(ctx, req, in.Stream)
	if err != nil {
		return nil, err
	}
	return append(out, res...), nil
}

// ---- client side ----

// openStream opens a stream through the client's stream interceptors. It
// returns the stream to use (possibly wrapped) and the connection's own.
func (c *Client) openStream(ctx context.Context, fn string, args []byte) (Stream, *conn.Stream, error) {
	if len(c.opts.streamInterceptors) == 0 {
		raw, err := c.openRaw(ctx, fn, outgoingMetadata(ctx), args)
		return raw, raw, err
	}
	var raw *conn.Stream
	final := func(ctx context.Context, req *StreamRequest) (Stream, error) {
		st, err := c.openRaw(ctx, req.Function, outgoingMetadata(ctx), req.Args)
		raw = st
		return st, err
	}
	st, err := chainStreamOpen(c.opts.streamInterceptors, final)(ctx, &StreamRequest{Function: fn, Metadata: outgoingMetadata(ctx), Args: args})
	if err != nil {
		if raw != nil {
			raw.Cancel()
		}
		return nil, nil, err
	}
	return st, raw, nil
}

func (c *Client) openRaw(ctx context.Context, fn string, md Metadata, args []byte) (*conn.Stream, error) {
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		st, err := cc.OpenStream(ctx, fn, md, args)
		if err != nil && attempt == 0 && refused(err) && ctx.Err() == nil {
			cc.Retire()
			continue
		}
		return st, err
	}
}

// ServerStream is the caller's side of a server-streaming call.
type ServerStream[M any] struct {
	Receiver[M]
	raw *conn.Stream
}

// Close abandons the stream (the server's handler sees its context
// cancelled if it is still running).
func (s *ServerStream[M]) Close() error {
	s.raw.Cancel()
	return nil
}

// CallServerStream starts a server-streaming call with one argument;
// read its messages with Recv until io.EOF. Cancel ctx to stop early.
func CallServerStream[M, A any](ctx context.Context, c *Client, fn string, a A) (*ServerStream[M], error) {
	args := value.AppendArrayHeader(nil, 1)
	args, err := appendArg(args, fn, 0, a, nil)
	if err != nil {
		return nil, err
	}
	st, raw, err := c.openStream(ctx, fn, args)
	if err != nil {
		return nil, err
	}
	st.CloseSend() // nothing to upload
	return &ServerStream[M]{Receiver: *newReceiver[M](st), raw: raw}, nil
}

// ClientStream is the caller's side of a client-streaming call.
type ClientStream[M, R any] struct {
	Sender[M]
	fn  string
	raw *conn.Stream
}

// OpenClientStream starts a client-streaming call: Send messages, then
// CloseAndRecv for the result.
func OpenClientStream[M, R any](ctx context.Context, c *Client, fn string) (*ClientStream[M, R], error) {
	st, raw, err := c.openStream(ctx, fn, value.AppendArrayHeader(nil, 0))
	if err != nil {
		return nil, err
	}
	return &ClientStream[M, R]{Sender: *newSender[M](st), fn: fn, raw: raw}, nil
}

// CloseAndRecv half-closes the upload and waits for the result.
func (s *ClientStream[M, R]) CloseAndRecv() (R, error) {
	var zero R
	s.st.CloseSend()
	res, err := s.raw.Result()
	if err != nil {
		return zero, streamError(err)
	}
	r := value.NewReader(res)
	v, err := value.For[R]().Decode(&r)
	if err != nil {
		return zero, status.Wrap(Internal, status.ErrSerialization, err, fmt.Sprintf("%s: decoding the result", s.fn))
	}
	return v, nil
}

// BidiStream is the caller's side of a bidirectional stream: Send and Recv
// are independent and may run in different goroutines.
type BidiStream[O, I any] struct {
	Sender[O]
	Receiver[I]
}

// OpenBidiStream starts a bidirectional streaming call.
func OpenBidiStream[O, I any](ctx context.Context, c *Client, fn string) (*BidiStream[O, I], error) {
	st, _, err := c.openStream(ctx, fn, value.AppendArrayHeader(nil, 0))
	if err != nil {
		return nil, err
	}
	return &BidiStream[O, I]{Sender: *newSender[O](st), Receiver: *newReceiver[I](st)}, nil
}

// CloseSend half-closes the upload; Recv still returns what the server
// sends until it ends the stream.
func (s *BidiStream[O, I]) CloseSend() error { return s.Sender.st.CloseSend() }
