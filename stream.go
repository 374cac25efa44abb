package arbor

import (
	"context"
	"reflect"
	"unsafe"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
)

// Streams: a server stream sends messages of type Out after one argument;
// a client stream receives messages of type In and returns one result; a
// bidirectional stream does both. Type parameters come in the function's
// order on both sides: what it sends (or returns) first, what it takes
// second.

// Sender sends typed messages on a stream. Send blocks while the
// receiver's flow-control window is full.
type Sender[M any] struct {
	st    Stream
	codec *value.Codec[M]
	buf   []byte
}

// Send encodes and sends one message.
func (s *Sender[M]) Send(m M) error {
	b, err := s.codec.Append(s.buf[:0], m)
	if err != nil {
		return wrapErr(InvalidArgument, ErrSerialization, err, "encoding a stream message")
	}
	s.buf = b
	return s.st.Send(b)
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
		return zero, err
	}
	rd := value.NewReader(b)
	if r.bytes {
		// Each message arrives in a buffer of its own, so a []byte message
		// can point into it: one copy fewer per message.
		var m M
		if !rd.ReadNil() {
			p, err := rd.ReadStringBytes()
			if err != nil {
				return zero, wrapErr(InvalidArgument, ErrSerialization, err, "decoding a stream message as bytes")
			}
			*(*[]byte)(unsafe.Pointer(&m)) = p
		}
		return m, nil
	}
	m, err := r.codec.Decode(&rd)
	if err != nil {
		return zero, wrapErr(InvalidArgument, ErrSerialization, err, "decoding a stream message as "+r.codec.TypeName())
	}
	return m, nil
}

func newSender[M any](st Stream) *Sender[M] { return &Sender[M]{st: st, codec: value.For[M]()} }

func newReceiver[M any](st Stream) *Receiver[M] {
	_, isBytes := any((*M)(nil)).(*[]byte)
	return &Receiver[M]{st: st, codec: value.For[M](), bytes: isBytes}
}

// checkMessage validates a stream's message type at registration.
func checkMessage[M any](id, what string) error {
	if capTypes.has(reflect.TypeFor[M]()) && reflect.TypeFor[M]().Kind() != reflect.Interface {
		return Errorf(InvalidArgument, "%s: %s messages hold capabilities, which streams cannot carry yet", id, what)
	}
	if err := value.For[M]().Err(); err != nil {
		return Errorf(InvalidArgument, "%s: %s messages: %v", id, what, err)
	}
	return nil
}

// ---- server side ----

// HandleServerStream registers fn as a server-streaming function: it
// takes one argument and sends any number of messages; returning ends the
// stream (with the error, if any).
func HandleServerStream[Out, A any](r Registrar, id string, fn func(ctx context.Context, a A, out *Sender[Out]) error, opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := firstErr(checkArg[A](id, 0), checkMessage[Out](id, "sent")); err != nil {
		return err
	}
	ca := value.For[A]()
	h := newHandler(id, KindServerStream, "stream "+value.For[Out]().TypeName(), opts, ca.TypeName())
	h.caps = hasCaps(reflect.TypeFor[A]())
	h.stream = func(ctx context.Context, in *conn.Incoming, st Stream, args, out []byte) ([]byte, error) {
		d, err := h.decoder(ctx, in, args)
		if err != nil {
			return nil, err
		}
		a, err := decodeArg(&d, 0, ca)
		if err != nil {
			return nil, err
		}
		if err := d.finish(in); err != nil {
			return nil, err
		}
		return value.AppendNil(out), fn(ctx, a, newSender[Out](st))
	}
	return r.register(h, false)
}

// HandleClientStream registers fn as a client-streaming function: it
// receives messages until io.EOF and returns one result.
func HandleClientStream[R, In any](r Registrar, id string, fn func(ctx context.Context, in *Receiver[In]) (R, error), opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := firstErr(checkResult[R](id), checkMessage[In](id, "received")); err != nil {
		return err
	}
	h := newHandler(id, KindClientStream, value.For[R]().TypeName(), opts, "stream "+value.For[In]().TypeName())
	h.stream = func(ctx context.Context, in *conn.Incoming, st Stream, args, out []byte) ([]byte, error) {
		res, err := fn(ctx, newReceiver[In](st))
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, in, out, res)
	}
	return r.register(h, false)
}

// HandleBidiStream registers fn as a bidirectional streaming function: it
// receives and sends independently; returning ends the stream.
func HandleBidiStream[Out, In any](r Registrar, id string, fn func(ctx context.Context, in *Receiver[In], out *Sender[Out]) error, opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := firstErr(checkMessage[Out](id, "sent"), checkMessage[In](id, "received")); err != nil {
		return err
	}
	h := newHandler(id, KindBidiStream, "stream "+value.For[Out]().TypeName(), opts, "stream "+value.For[In]().TypeName())
	h.stream = func(ctx context.Context, in *conn.Incoming, st Stream, args, out []byte) ([]byte, error) {
		return value.AppendNil(out), fn(ctx, newReceiver[In](st), newSender[Out](st))
	}
	return r.register(h, false)
}

// ---- client side ----

// openStream opens a stream of the given kind through c.
func openStream(ctx context.Context, c Caller, kind Kind, e *argEncoder, args []byte) (*Response, error) {
	if e.err != nil {
		e.done()
		return nil, e.err
	}
	req := &Request{ID: e.id, Kind: kind, Metadata: outgoingMetadata(ctx), Args: args, promises: e.promises, caps: e.caps}
	resp, err := c.Call(ctx, req)
	e.done()
	if err != nil {
		return nil, err
	}
	if resp.Stream == nil {
		return nil, Errorf(Internal, "%s: the Caller returned no stream for a streaming call", e.id)
	}
	return resp, nil
}

// ServerStream is the caller's side of a server-streaming call.
type ServerStream[Out any] struct {
	Receiver[Out]
	raw *conn.Stream
}

// Close abandons the stream (the server's handler sees its context
// cancelled if it is still running). Reading until io.EOF ends the stream
// too; one of the two is needed.
func (s *ServerStream[Out]) Close() error {
	if s.raw != nil {
		s.raw.Cancel()
	}
	return nil
}

// CallServerStream starts a server-streaming call with one argument; read
// its messages with Recv until io.EOF. Cancel ctx or Close to stop early.
func CallServerStream[Out, A any](ctx context.Context, c Caller, id string, a A) (*ServerStream[Out], error) {
	e := argEncoder{id: id}
	args := value.AppendArrayHeader(nil, 1)
	args = appendArg(&e, args, 0, a)
	resp, err := openStream(ctx, c, KindServerStream, &e, args)
	if err != nil {
		return nil, err
	}
	resp.Stream.CloseSend() // nothing to upload
	return &ServerStream[Out]{Receiver: *newReceiver[Out](resp.Stream), raw: resp.raw}, nil
}

// ClientStream is the caller's side of a client-streaming call: Send
// messages, then CloseAndRecv for the result.
type ClientStream[R, In any] struct {
	Sender[In]
	id  string
	raw *conn.Stream
	own *Client
}

// OpenClientStream starts a client-streaming call.
func OpenClientStream[R, In any](ctx context.Context, c Caller, id string) (*ClientStream[R, In], error) {
	e := argEncoder{id: id}
	resp, err := openStream(ctx, c, KindClientStream, &e, value.AppendArrayHeader(nil, 0))
	if err != nil {
		return nil, err
	}
	return &ClientStream[R, In]{Sender: *newSender[In](resp.Stream), id: id, raw: resp.raw, own: resp.owner}, nil
}

// CloseAndRecv half-closes the upload and waits for the result.
func (s *ClientStream[R, In]) CloseAndRecv() (R, error) {
	var zero R
	s.st.CloseSend()
	if s.raw == nil {
		return zero, Errorf(Internal, "%s: the stream has no result (an interceptor replaced it)", s.id)
	}
	res, err := s.raw.Result()
	if err != nil {
		return zero, streamError(err)
	}
	var dec *capDecoder
	if caps := s.raw.ResultCaps(); len(caps) > 0 {
		dec = &capDecoder{cc: s.raw.Conn(), table: caps, owner: s.own}
		defer dec.releaseUnused()
	}
	return decodeResult[R](s.id, res, dec)
}

// Close abandons the stream.
func (s *ClientStream[R, In]) Close() error {
	if s.raw != nil {
		s.raw.Cancel()
	}
	return nil
}

// BidiStream is the caller's side of a bidirectional stream: Send (In)
// and Recv (Out) are independent and may run in different goroutines.
type BidiStream[Out, In any] struct {
	Sender[In]
	Receiver[Out]
	raw *conn.Stream
}

// OpenBidiStream starts a bidirectional streaming call.
func OpenBidiStream[Out, In any](ctx context.Context, c Caller, id string) (*BidiStream[Out, In], error) {
	e := argEncoder{id: id}
	resp, err := openStream(ctx, c, KindBidiStream, &e, value.AppendArrayHeader(nil, 0))
	if err != nil {
		return nil, err
	}
	return &BidiStream[Out, In]{Sender: *newSender[In](resp.Stream), Receiver: *newReceiver[Out](resp.Stream), raw: resp.raw}, nil
}

// CloseSend half-closes the upload; Recv still returns what the server
// sends until it ends the stream.
func (s *BidiStream[Out, In]) CloseSend() error { return s.Sender.st.CloseSend() }

// Close abandons the stream.
func (s *BidiStream[Out, In]) Close() error {
	if s.raw != nil {
		s.raw.Cancel()
	}
	return nil
}
