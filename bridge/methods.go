package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
	"github.com/arbor-rpc/arbor/value"
)

// readHeaderTimeout bounds a client's request headers (slowloris).
const readHeaderTimeout = 10 * time.Second

// build makes the connect handler of one method: its bytes go straight to
// the function as a msgpack bin, and its result straight back.
func (h *Handler) build(md protoreflect.MethodDescriptor) http.Handler {
	id := arborproto.Procedure(md)
	opts := []connect.HandlerOption{
		connect.WithCodec(binaryCodec{}),
		connect.WithCodec(&jsonCodec{in: h.messageType(md.Input()), out: h.messageType(md.Output())}),
		connect.WithReadMaxBytes(h.cfg.MaxMessageBytes),
	}
	if f, ok := h.srv.Function(id); ok && f.Idempotent {
		opts = append(opts, connect.WithIdempotency(connect.IdempotencyNoSideEffects)) // Connect GET too
	}
	srv := h.srv
	switch arborproto.KindOf(md) {
	case arbor.KindServerStream:
		return connect.NewServerStreamHandler(id, func(ctx context.Context, req *connect.Request[frame], out *connect.ServerStream[frame]) error {
			st := &stream{ctx: ctx, send: func(b []byte) error { return out.Send(&frame{b: b}) }}
			ictx := inbound(ctx, req.Header())
			_, err := srv.InvokeStream(ictx, id, req.Msg.args(), st)
			addTrailer(out.ResponseTrailer(), ictx)
			return toConnect(err)
		}, opts...)
	case arbor.KindClientStream:
		return connect.NewClientStreamHandler(id, func(ctx context.Context, in *connect.ClientStream[frame]) (*connect.Response[frame], error) {
			st := &stream{ctx: ctx, next: func() (*frame, error) {
				if in.Receive() {
					return in.Msg(), nil
				}
				if err := in.Err(); err != nil {
					return nil, err
				}
				return nil, io.EOF
			}}
			ictx := inbound(ctx, in.RequestHeader())
			res, err := srv.InvokeStream(ictx, id, nil, st)
			return respond(ictx, id, res, err)
		}, opts...)
	case arbor.KindBidiStream:
		return connect.NewBidiStreamHandler(id, func(ctx context.Context, bs *connect.BidiStream[frame, frame]) error {
			st := &stream{ctx: ctx, next: bs.Receive, send: func(b []byte) error { return bs.Send(&frame{b: b}) }}
			ictx := inbound(ctx, bs.RequestHeader())
			_, err := srv.InvokeStream(ictx, id, nil, st)
			addTrailer(bs.ResponseTrailer(), ictx)
			return toConnect(err)
		}, opts...)
	}
	return connect.NewUnaryHandler(id, func(ctx context.Context, req *connect.Request[frame]) (*connect.Response[frame], error) {
		ictx := inbound(ctx, req.Header())
		res, err := srv.Invoke(ictx, id, req.Msg.args())
		return respond(ictx, id, res, err)
	}, opts...)
}

// respond is the response of a unary or client-stream call: its result
// or error, with the trailers the handler set (an error's metadata, which
// gRPC sends as trailers).
func respond(ictx context.Context, id string, res []byte, err error) (*connect.Response[frame], error) {
	if err != nil {
		err = toConnect(err)
		var ce *connect.Error
		if errors.As(err, &ce) {
			addTrailer(ce.Meta(), ictx)
		}
		return nil, err
	}
	resp, err := result(id, res)
	if err == nil {
		addTrailer(resp.Trailer(), ictx)
	}
	return resp, err
}

// addTrailer adds the trailers set with arbor.SetTrailer on the call run
// with ictx to h, leaving out those whose keys belong to the protocols.
func addTrailer(h http.Header, ictx context.Context) {
	for _, p := range arbor.InboundTrailer(ictx) {
		if !isProtocolHeader(strings.ToLower(p.Key)) {
			h.Add(p.Key, p.Value)
		}
	}
}

// result turns a function's msgpack-encoded result (a bin of protobuf, or
// nil for an empty message) into a response.
func result(id string, res []byte) (*connect.Response[frame], error) {
	b, err := unbin(res)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("%s: the result is not a protobuf message: %v", id, err))
	}
	return connect.NewResponse(&frame{b: b}), nil
}

// unbin returns the bytes of a msgpack bin (or str), or nil for nil.
func unbin(b []byte) ([]byte, error) {
	r := value.NewReader(b)
	if r.ReadNil() {
		return nil, nil
	}
	p, err := r.ReadStringBytes()
	if err != nil {
		return nil, err
	}
	if n := len(r.Rest()); n > 0 {
		return nil, fmt.Errorf("%d byte(s) after the message", n)
	}
	return p, nil
}

// stream is a connect stream as the arbor.Stream a handler runs on.
type stream struct {
	ctx  context.Context
	send func([]byte) error     // nil: the handler may not send
	next func() (*frame, error) // nil: nothing to receive; io.EOF at the end
}

func (s *stream) Context() context.Context { return s.ctx }

// Send strips the msgpack bin the handler's Sender encoded.
func (s *stream) Send(msg []byte) error {
	if s.send == nil {
		return arbor.Errorf(arbor.FailedPrecondition, "this stream sends nothing to its caller")
	}
	b, err := unbin(msg)
	if err != nil {
		return arbor.Errorf(arbor.Internal, "a stream message is not a protobuf message: %v", err)
	}
	return s.send(b)
}

// Recv returns the next message as the msgpack bin a Receiver decodes.
func (s *stream) Recv() ([]byte, error) {
	if s.next == nil {
		return nil, io.EOF
	}
	f, err := s.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fromConnect(err)
	}
	return f.msg(), nil
}

func (s *stream) CloseSend() error { return nil }

// inbound is ctx as the call's context: headers as metadata, and the peer.
func inbound(ctx context.Context, hdr http.Header) context.Context {
	peer, _ := ctx.Value(peerKey{}).(arbor.Peer)
	return arbor.InboundContext(ctx, metadata(hdr), peer)
}

// protocolHeaders are the headers of the HTTP and RPC protocols, not the
// caller's metadata.
var protocolHeaders = map[string]bool{
	"accept": true, "accept-encoding": true, "connection": true, "content-encoding": true,
	"content-length": true, "content-type": true, "host": true, "keep-alive": true, "te": true,
	"trailer": true, "transfer-encoding": true, "upgrade": true, "user-agent": true,
	"x-grpc-web": true, "x-user-agent": true, "origin": true,
}

// isProtocolHeader reports whether the lower-case header name k belongs
// to HTTP, gRPC or Connect rather than to the caller's metadata.
func isProtocolHeader(k string) bool {
	return protocolHeaders[k] || strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, "connect-")
}

// metadata turns request headers into metadata: lower-case keys, in
// sorted order, protocol headers left out.
func metadata(hdr http.Header) arbor.Metadata {
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		if isProtocolHeader(strings.ToLower(k)) {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	md := make(arbor.Metadata, 0, len(keys))
	for _, k := range keys {
		for _, v := range hdr[k] {
			md = append(md, arbor.Pair{Key: strings.ToLower(k), Value: v})
		}
	}
	return md
}

// toConnect gives an Arbor error its gRPC code (the same numbering).
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	code, msg, details := grpcStatus(err)
	ce = connect.NewError(connect.Code(code), errors.New(msg))
	if len(details) > 0 { // as the native server sends them (statusDetailsBin)
		for _, a := range detailAnys(code, details) {
			if d, err := connect.NewErrorDetail(a); err == nil {
				ce.AddDetail(d)
			}
		}
	}
	return ce
}

// fromConnect is the inverse, for errors of the caller's side of a stream.
func fromConnect(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return arbor.NewError(arbor.Code(ce.Code()), ce.Message())
	}
	return err
}

func sortStrings(s []string) []string { slices.Sort(s); return s }
