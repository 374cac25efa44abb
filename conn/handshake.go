package conn

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// handshake sends our HELLO, reads the peer's, and agrees limits. Both ends
// write first, so neither waits on the other.
func (c *Conn) handshake() (*wire.Reader, error) {
	ka := c.cfg.KeepAlive
	if ka < 0 {
		ka = 0
	}
	hello := wire.Hello{Version: wire.Version, MaxFrame: c.cfg.MaxFrame, MaxConcurrent: c.cfg.MaxConcurrent, KeepAlive: ka,
		StreamWindow: c.cfg.StreamWindow, ConnWindow: c.cfg.ConnWindow}
	c.streamWindow, c.connWindow = c.cfg.StreamWindow, c.cfg.ConnWindow
	c.nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := c.nc.Write(wire.AppendHello(nil, hello)); err != nil {
		return nil, status.Wrap(status.Unavailable, status.ErrConnection, err, "handshake: sending HELLO")
	}
	r := wire.NewReader(c.nc, c.cfg.ReadBufferSize, c.cfg.MaxFrame)
	if b := r.Peek(3); len(b) == 3 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03 {
		// A TLS record (an alert or a handshake) where HELLO should be.
		return nil, status.Wrap(status.Unavailable, status.ErrTLS, nil, "handshake: the peer speaks TLS: use a tls:// address")
	}
	h, p, err := r.Next()
	if err != nil {
		msg := "handshake: reading HELLO"
		if errors.Is(err, io.EOF) && c.client {
			msg += " (the server closed the connection at once: it may expect TLS, try tls://, or not be an Arbor server)"
		}
		return nil, status.Wrap(status.Unavailable, handshakeCategory(err), err, msg)
	}
	if h.Type == wire.TypeGoAway { // the peer refused us and said why
		g, _ := wire.ParseGoAway(p)
		return nil, status.Errorf(status.Unavailable, "handshake: peer refused the connection: %s", g.Message)
	}
	if h.Type != wire.TypeHello {
		return nil, status.Wrap(status.Unavailable, status.ErrProtocol, nil, fmt.Sprintf("handshake: expected HELLO, got %s", h.Type))
	}
	peer, err := wire.ParseHello(p)
	if err != nil {
		return nil, status.Wrap(status.Unavailable, status.ErrProtocol, err, "handshake")
	}
	if peer.Version != wire.Version {
		msg := fmt.Sprintf("protocol version mismatch: peer speaks %d, this side %d", peer.Version, wire.Version)
		c.nc.Write(wire.AppendGoAway(nil, wire.GoAway{Code: uint32(status.Unimplemented), Message: []byte(msg)}))
		return nil, status.Wrap(status.Unavailable, status.ErrProtocol, nil, "handshake: "+msg)
	}
	if peer.MaxFrame < wire.MinMaxFrame {
		return nil, status.Wrap(status.Unavailable, status.ErrProtocol, nil,
			fmt.Sprintf("handshake: peer's frame limit %d is below the minimum %d", peer.MaxFrame, wire.MinMaxFrame))
	}
	c.peerMaxFrame = min(peer.MaxFrame, wire.MaxMaxFrame)
	c.peerMaxConcurrent = peer.MaxConcurrent
	if peer.StreamWindow == 0 { // a zero window means the default
		peer.StreamWindow = DefaultStreamWindow
	}
	if peer.ConnWindow == 0 {
		peer.ConnWindow = DefaultConnWindow
	}
	c.peerStreamWindow = min(peer.StreamWindow, 1<<30)
	c.connCredit = int64(min(peer.ConnWindow, 1<<30))
	switch {
	case ka == 0 || peer.KeepAlive == 0:
		// Either side off: ping only if we asked for it.
		c.keepAlive = ka
	default:
		c.keepAlive = min(ka, peer.KeepAlive)
	}
	return r, nil
}

func handshakeCategory(err error) error {
	if isTimeout(err) {
		return status.ErrTimeout
	}
	return status.ErrConnection
}
