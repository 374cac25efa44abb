package arbor

import (
	"context"
	"sync"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// Calls that reach a server by another protocol (package bridge: gRPC,
// gRPC-Web and Connect over HTTP) run in process on the same handlers and
// through the same interceptors as calls over Arbor's wire: Invoke for
// unary functions, InvokeStream for streams, with InboundContext saying
// who called and with what metadata.

// InboundContext returns ctx as the context of a call that reached this
// process by another protocol: handlers and interceptors run with it see
// md as IncomingMetadata and peer as PeerFromContext. Pass it to Invoke or
// InvokeStream.
// Trailers the handler sets (SetTrailer) are kept for InboundTrailer.
func InboundContext(ctx context.Context, md Metadata, peer Peer) context.Context {
	ctx = context.WithValue(ctx, conn.MetadataKey, []wire.MD(md))
	ctx = context.WithValue(ctx, inboundTrailerKey{}, &inboundTrailer{})
	return context.WithValue(ctx, peerKey{}, &peer)
}

// InboundTrailer returns the trailers handlers and interceptors set with
// SetTrailer on a call run with ctx, a context from InboundContext, so
// that the protocol that brought the call can send them back.
func InboundTrailer(ctx context.Context) Metadata {
	t, ok := ctx.Value(inboundTrailerKey{}).(*inboundTrailer)
	if !ok {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append(Metadata(nil), t.md...)
}

type inboundTrailerKey struct{}

// inboundTrailer collects the trailers of a call that came by another
// protocol; a handler may set them from several goroutines.
type inboundTrailer struct {
	mu sync.Mutex
	md Metadata
}

func (t *inboundTrailer) add(md []wire.MD) {
	t.mu.Lock()
	t.md = append(t.md, md...)
	t.mu.Unlock()
}

// InvokeStream runs streaming function id in process, through the
// server's interceptors, on st: the handler receives what st.Recv returns
// and sends through st.Send, one msgpack-encoded message each (as
// Request.Stream carries them). args is the argument array: a server
// stream's one argument, nil for client and bidirectional streams.
// InvokeStream returns when the handler does, with the msgpack-encoded
// result of a client stream (nil for the other kinds); the caller ends
// its side of st then.
func (s *Server) InvokeStream(ctx context.Context, id string, args []byte, st Stream) ([]byte, error) {
	h := s.lookup(id)
	if h == nil {
		return nil, unknownFunction(id)
	}
	if h.stream == nil {
		return nil, Errorf(InvalidArgument, "%s is a unary function; call it with Invoke", id)
	}
	if st == nil {
		return nil, Errorf(InvalidArgument, "%s: InvokeStream needs a stream", id)
	}
	if args == nil {
		args = value.AppendArrayHeader(nil, 0)
	}
	req := &Request{ID: id, Kind: h.info.Kind, Metadata: IncomingMetadata(ctx), Args: args, Stream: st, h: h}
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	resp, err := s.invokeChain(ctx, req)
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.Result, nil
}
