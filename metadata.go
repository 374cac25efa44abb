package arbor

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

// Pair is one metadata key/value.
type Pair = wire.MD

// Metadata is a call's key/value pairs, in order; keys may repeat.
type Metadata []Pair

// Get returns the first value for key, or "".
func (m Metadata) Get(key string) string {
	for _, p := range m {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

type outgoingKey struct{}

// WithMetadata returns a context whose calls carry the given key/value
// pairs (kv alternates keys and values) in addition to any already there.
func WithMetadata(ctx context.Context, kv ...string) context.Context {
	if len(kv)%2 != 0 {
		panic("arbor.WithMetadata: odd number of arguments")
	}
	old, _ := ctx.Value(outgoingKey{}).(Metadata)
	md := make(Metadata, len(old), len(old)+len(kv)/2)
	copy(md, old)
	for i := 0; i < len(kv); i += 2 {
		md = append(md, Pair{Key: kv[i], Value: kv[i+1]})
	}
	return context.WithValue(ctx, outgoingKey{}, md)
}

func outgoingMetadata(ctx context.Context) Metadata {
	md, _ := ctx.Value(outgoingKey{}).(Metadata)
	return md
}

// IncomingMetadata returns the metadata the caller sent, inside a handler.
// It is read-only: calls that carry the same metadata share one parse of
// it (slices.Clone it to change it).
func IncomingMetadata(ctx context.Context) Metadata {
	md, _ := ctx.Value(conn.MetadataKey).([]wire.MD)
	return Metadata(md)
}

// Peer describes the other end of a connection.
type Peer struct {
	Addr net.Addr
	// TLS is the connection's TLS state, nil on plain transports.
	TLS *tls.ConnectionState
}

type peerKey struct{}

// peerOf describes the other end of nc; nc's TLS handshake, if any, must
// be complete.
func peerOf(nc net.Conn) Peer {
	p := Peer{Addr: nc.RemoteAddr()}
	if cs, ok := nc.(connectionStater); ok {
		st := cs.ConnectionState()
		p.TLS = &st
	}
	return p
}

// connectionStater is a connection that knows its TLS state (*tls.Conn,
// and QUIC connections).
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// PeerFromContext returns the caller's identity, inside a handler.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(*Peer)
	if !ok {
		return Peer{}, false
	}
	return *p, true
}
