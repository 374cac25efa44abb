package conn

import (
	"context"
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
	c.nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := c.nc.Write(c.hello()); err != nil {
		return nil, status.Wrap(status.Unavailable, status.ErrConnection, err, "handshake: sending HELLO")
	}
	r := wire.NewReader(c.nc, c.cfg.ReadBufferSize, c.cfg.MaxFrame)
	return r, c.readHello(r)
}

// hello is our HELLO frame.
func (c *Conn) hello() []byte {
	c.streamWindow, c.connWindow = c.cfg.StreamWindow, c.cfg.ConnWindow
	return wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: c.cfg.MaxFrame, MaxConcurrent: c.cfg.MaxConcurrent,
		KeepAlive: max(c.cfg.KeepAlive, 0), StreamWindow: c.cfg.StreamWindow, ConnWindow: c.cfg.ConnWindow})
}

// startEarly starts a client on a connection whose 0-RTT handshake is
// still under way: it sends HELLO in early data (it asks for nothing) and
// returns without waiting for the peer's, which the reader takes first.
// Until it has, calls marked idempotent go at once (in 0-RTT data, within
// the frame size every peer accepts); every other call waits for it.
func (c *Conn) startEarly() (*Conn, error) {
	c.helloCh = make(chan struct{})
	c.peerMaxFrame = wire.MinMaxFrame
	c.nc.SetWriteDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	_, err := c.ec.WriteEarly(c.hello())
	c.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		c.nc.Close()
		return nil, status.Wrap(status.Unavailable, status.ErrConnection, err, "handshake: sending HELLO")
	}
	if obs := c.cfg.Observer; obs != nil { // as start does, before the loops
		obs.ConnOpened(c)
	}
	c.loops.Add(2) // the reader and the keep-alive (see start)
	go c.earlyReadLoop()
	return c, nil
}

// earlyReadLoop reads the peer's HELLO, starts the keep-alive, then is
// the reader.
func (c *Conn) earlyReadLoop() {
	r := wire.NewReader(c.nc, c.cfg.ReadBufferSize, c.cfg.MaxFrame)
	c.nc.SetReadDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	err := c.readHello(r)
	c.nc.SetReadDeadline(time.Time{})
	if err != nil {
		c.closeWith(status.FromError(err)) // before waking the callers: they see it
		close(c.helloCh)
		c.loops.Done() // the keep-alive's, never started
		c.loops.Done()
		return
	}
	if c.keepAlive > 0 {
		c.startKeepAlive()
	} else {
		c.loops.Done()
	}
	close(c.helloCh)
	c.readLoop(r)
}

// earlyOK reports whether a call may go before the peer's HELLO: a plain
// idempotent unary call that fits the smallest frame limit a peer may ask
// for.
func (c *Conn) earlyOK(o *Outgoing, st *Stream, size int) bool {
	return o.Idempotent && st == nil && !o.Retain && o.Target == nil && len(o.Promises) == 0 && len(o.Caps) == 0 &&
		size <= wire.MinMaxFrame
}

// waitHello waits, on a client started early, for the peer's HELLO.
func (c *Conn) waitHello(ctx context.Context) error {
	if c.helloCh == nil {
		return nil
	}
	select {
	case <-c.helloCh:
	case <-ctx.Done():
		return status.FromError(ctx.Err())
	}
	return c.Err()
}

// readHello reads the peer's HELLO and agrees limits.
func (c *Conn) readHello(r *wire.Reader) error {
	ka := max(c.cfg.KeepAlive, 0)
	if b := r.Peek(3); len(b) == 3 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 0x03 {
		// A TLS record (an alert or a handshake) where HELLO should be.
		return status.Wrap(status.Unavailable, status.ErrTLS, nil, "handshake: the peer speaks TLS: use a tls:// address")
	}
	h, p, err := r.Next()
	if err != nil {
		msg := "handshake: reading HELLO"
		if errors.Is(err, io.EOF) && c.client {
			msg += " (the server closed the connection at once: it may expect TLS, try tls://, or not be an Arbor server)"
		}
		return status.Wrap(status.Unavailable, handshakeCategory(err), err, msg)
	}
	if h.Type == wire.TypeGoAway { // the peer refused us and said why
		g, _ := wire.ParseGoAway(p)
		return status.Errorf(status.Unavailable, "handshake: peer refused the connection: %s", g.Message)
	}
	if h.Type != wire.TypeHello {
		return status.Wrap(status.Unavailable, status.ErrProtocol, nil, fmt.Sprintf("handshake: expected HELLO, got %s", h.Type))
	}
	peer, err := wire.ParseHello(p)
	if err != nil {
		return status.Wrap(status.Unavailable, status.ErrProtocol, err, "handshake")
	}
	if peer.Version != wire.Version {
		msg := fmt.Sprintf("protocol version mismatch: peer speaks %d, this side %d", peer.Version, wire.Version)
		c.nc.Write(wire.AppendGoAway(nil, wire.GoAway{Code: uint32(status.Unimplemented), Message: []byte(msg)}))
		return status.Wrap(status.Unavailable, status.ErrProtocol, nil, "handshake: "+msg)
	}
	if peer.MaxFrame < wire.MinMaxFrame {
		return status.Wrap(status.Unavailable, status.ErrProtocol, nil,
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
		// A peer may shorten the interval to its own, but not below
		// minPeerKeepAlive: pings it asks for cost this side a write and
		// a timer per connection.
		c.keepAlive = min(ka, max(peer.KeepAlive, minPeerKeepAlive))
	}
	return nil
}

// minPeerKeepAlive is the shortest keep-alive interval a peer's HELLO can
// impose (this side's own Config.KeepAlive may be shorter).
const minPeerKeepAlive = time.Second

func handshakeCategory(err error) error {
	if isTimeout(err) {
		return status.ErrTimeout
	}
	return status.ErrConnection
}
