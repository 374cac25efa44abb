package arbor

import (
	"context"

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
func InboundContext(ctx context.Context, md Metadata, peer Peer) context.Context {
	ctx = context.WithValue(ctx, conn.MetadataKey, []wire.MD(md))
	return context.WithValue(ctx, peerKey{}, &peer)
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
