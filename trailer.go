package arbor

import (
	"context"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

// SetTrailer adds key/value pairs (kv alternates keys and values) to the
// trailers a handler sends back with its result or error. It reports false
// when ctx is not a handler's context.
func SetTrailer(ctx context.Context, kv ...string) bool {
	if len(kv)%2 != 0 {
		panic("arbor.SetTrailer: odd number of arguments")
	}
	md := make([]wire.MD, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		md = append(md, wire.MD{Key: kv[i], Value: kv[i+1]})
	}
	if t, ok := ctx.Value(inboundTrailerKey{}).(*inboundTrailer); ok {
		t.add(md) // a call by another protocol (InboundContext)
		return true
	}
	return conn.SetTrailer(ctx, md...)
}

// CaptureTrailer returns a context whose calls store the server's trailers
// in *dst when the call ends (streams: when the stream ends).
func CaptureTrailer(ctx context.Context, dst *Metadata) context.Context {
	return conn.WithTrailerSink(ctx, (*[]wire.MD)(dst))
}
