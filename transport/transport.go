// Package transport turns Arbor addresses into listeners and connections.
//
// An address is a URL-like string (see ParseAddr): tcp://host:port,
// tls://host:port, quic://host:port, unix:/path/to/socket, or mem:name (an
// in-process, buffered connection for tests, scoped to a MemNetwork value
// rather than a global registry). Listening on port 0 picks a free port; Listener.URL
// reports the address actually bound.
//
// tls:// is TLS 1.3 only. Dial completes the handshake before returning;
// a listener's Accept does not handshake, so a slow client cannot hold up
// the others (the handshake runs on the connection's first Read or Write).
// Its connections are *tls.Conn over a socket that also lets NewTryWriter
// write without waiting for room.
// Errors matching ErrTLS and ErrConfig tell TLS and configuration failures
// apart from network ones.
//
// quic:// is QUIC over UDP, with the same TLS 1.3 configuration as tls://
// and the ALPN protocol QUICALPN ("arbor/1"), which both sides require.
// Its connections implement StreamConn: the net.Conn methods act on a
// control stream, the first bidirectional stream, which the dialer opens
// right after the handshake and which Accept waits for (on a goroutine per
// connection, so a slow client does not hold up the others); OpenStream and
// AcceptStream carry further native streams. Closing the connection closes
// the whole QUIC connection. Dial errors match ErrTLS only for TLS failures
// (certificates, ALPN): a server that does not answer shows up as ctx
// ending or as a handshake timeout, both net errors. The dialer's UDP
// socket is connected, so a port where nothing listens refuses the dial
// at once (ECONNREFUSED), as TCP does; once the handshake is done no ICMP
// error ends the connection (QUIC trusts none: the idle timeout ends a
// connection whose peer is gone).
//
// It is not a protocol: it knows nothing of frames or calls. Every transport
// here yields a byte stream (net.Conn); a multiplexing transport (quic://)
// additionally implements StreamConn, native streams beside the one the
// connection layer carries its frames on.
package transport

import (
	"context"
	"crypto/tls"
	"net"
)

// Listener accepts connections for one address.
type Listener interface {
	net.Listener
	// URL is the address actually bound, in the same scheme as asked,
	// e.g. "tcp://127.0.0.1:54321" after asking for port 0.
	URL() string
}

// StreamConn is implemented by connections of multiplexing transports that
// can carry each call on its own native stream.
type StreamConn interface {
	net.Conn
	OpenStream(ctx context.Context) (net.Conn, error)
	AcceptStream(ctx context.Context) (net.Conn, error)
}

// MinWriter is implemented by connections that pay extra for writes
// shorter than MinWrite bytes (quic://: quic-go copies a received STREAM
// frame under 128 bytes into two fresh allocations, a longer one into a
// pooled buffer). A writer that can pad its writes (Arbor's PAD frame)
// rounds short ones up to it.
type MinWriter interface {
	MinWrite() int
}

// Config holds what a transport needs beyond the address. The zero value
// (or a nil *Config) is usable for tcp:// and unix: addresses.
type Config struct {
	// CertFile and KeyFile are PEM files: the server's certificate for a
	// listener, the client certificate (mutual TLS) for a dialer. A tls://
	// or quic:// listener needs them (or TLS); for a dialer they are optional but
	// must be set together.
	CertFile, KeyFile string
	// CAFile is a PEM bundle. For a dialer it holds the roots that verify
	// the server (system roots when empty). For a listener it turns on
	// mutual TLS: clients must present a certificate signed by it.
	CAFile string
	// ServerName overrides the name a dialer verifies (default: the host
	// of the address, without the port). A ServerName set in TLS wins.
	ServerName string
	// TLS, when set, is used as is (cloned) instead of building a
	// configuration from the files above, which are then ignored. TLS 1.3
	// is still enforced: MinVersion is raised to it, and a MaxVersion
	// below it is an error.
	TLS *tls.Config
	// Mem scopes mem: addresses. Required for mem: addresses.
	Mem *MemNetwork

	// Allow0RTT turns on QUIC 0-RTT (quic:// only). A listener then
	// accepts early data from clients resuming a session, and hands out
	// connections before their handshake completes (see EarlyConn). A
	// dialer with a session for the server in SessionCache resumes it and
	// returns at once, with an EarlyConn on which only WriteEarly sends
	// before the handshake completes; Write waits for it. Early data can
	// be replayed by an attacker: only idempotent requests belong in it.
	Allow0RTT bool
	// SessionCache keeps TLS sessions (tickets) across dials, which
	// resumption and 0-RTT need: share one cache between the dials of one
	// client. TLS.ClientSessionCache, when set, wins.
	SessionCache tls.ClientSessionCache
}

// EarlyConn is implemented by connections that can carry data before their
// handshake completes (quic:// with Allow0RTT). On the dialing side, bytes
// written with WriteEarly before HandshakeComplete is closed may go in
// 0-RTT data, which the server may receive twice (an attacker can replay
// it) or not at all (the server may reject 0-RTT, and the connection then
// fails with an error matching ErrEarlyRejected); Write waits for the
// handshake. On the accepting side, bytes read before HandshakeComplete is
// closed arrived in 0-RTT data.
type EarlyConn interface {
	net.Conn
	// HandshakeComplete is closed once the handshake has completed.
	HandshakeComplete() <-chan struct{}
	// WriteEarly writes b without waiting for the handshake.
	WriteEarly(b []byte) (int, error)
	// Used0RTT reports, once the handshake has completed, whether the
	// server accepted 0-RTT data.
	Used0RTT() bool
}

// Listen binds addr (see ParseAddr) and returns a listener for it. cfg may
// be nil for tcp:// and unix: addresses; tls:// and quic:// need a
// certificate and mem: a MemNetwork. ctx bounds the setting up, not the
// listener's life.
//
// A unix: socket file left behind by a process that died is removed first
// (but only when dialing it is refused); closing the listener removes the
// socket file.
func Listen(ctx context.Context, addr string, cfg *Config) (Listener, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	switch a.Scheme {
	case SchemeTCP:
		ln, url, err := listenTCP(ctx, a)
		if err != nil {
			return nil, err
		}
		return &listener{Listener: ln, url: url}, nil
	case SchemeTLS:
		return listenTLS(ctx, a, cfg)
	case SchemeQUIC:
		return listenQUIC(ctx, a, cfg)
	case SchemeUnix:
		return listenUnix(ctx, a)
	case SchemeMem:
		return listenMem(ctx, a, cfg)
	}
	return nil, &AddrError{Addr: addr, Reason: "unsupported scheme " + a.Scheme}
}

// Dial connects to addr (see ParseAddr). cfg may be nil for tcp:// and
// unix: addresses, and for tls:// and quic:// to a server whose certificate
// the system roots verify. ctx bounds the whole dial, TLS handshake included; once
// Dial has returned, ctx no longer affects the connection.
//
// A tls:// connection is returned after a successful handshake, as a
// *tls.Conn. With TLS 1.3 a server that rejects the client's certificate
// says so after the client has finished its side of the handshake, so that
// rejection surfaces on the first Read instead. The same holds for a
// quic:// connection, returned (as a StreamConn) after the handshake, with
// its control stream opened.
func Dial(ctx context.Context, addr string, cfg *Config) (net.Conn, error) {
	a, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	switch a.Scheme {
	case SchemeTCP:
		return dialTCP(ctx, a)
	case SchemeTLS:
		return dialTLS(ctx, a, cfg)
	case SchemeQUIC:
		return dialQUIC(ctx, a, cfg)
	case SchemeUnix:
		return dialUnix(ctx, a)
	case SchemeMem:
		return dialMem(ctx, a, cfg)
	}
	return nil, &AddrError{Addr: addr, Reason: "unsupported scheme " + a.Scheme}
}
