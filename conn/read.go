package conn

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// readLoop reads frames until the connection fails. A malformed frame is a
// protocol error: it closes this connection and nothing else.
func (c *Conn) readLoop(r *wire.Reader) {
	c.rd = r
	r.SetGrant(c.grantFrame)
	c.readFrames()
}

// grantFrame says whether a large frame's payload may have its whole
// buffer at once (wire.Reader.SetGrant), once its first part arrived: a
// call's, or an answer to a call this side waits for, when the memory
// budgets have room for it. The bytes are reserved here, for incoming to
// take over (a call) or for answer to give back once the frame is read
// (an answer: its caller owns it then), so that peers that announce
// large frames and stall hold at most what reserveEarly allows. Others
// grow with what arrives.
func (c *Conn) grantFrame(h wire.Header) bool {
	if c.granted != 0 {
		return false
	}
	switch h.Type {
	case wire.TypeCall:
	case wire.TypeResult:
		c.cmu.Lock()
		waiting := c.calls.get(h.ID) != nil
		c.cmu.Unlock()
		if !waiting {
			return false
		}
	default:
		return false
	}
	if !c.reserveEarly(int(h.Length)) {
		return false
	}
	c.granted = int(h.Length)
	return true
}

// readFrames is the reader loop proper, on c.rd; a new goroutine resumes
// it when an inline call holds the reader too long (inline.go).
func (c *Conn) readFrames() {
	// The reader's place in c.loops belongs to whichever goroutine reads:
	// one that handed the reading on (errHandedOff) leaves it counted.
	handedOff := false
	defer func() {
		if !handedOff {
			// The reader ends once the connection has closed, with no
			// lock held: closeRetained may take smu.
			c.closeRetained()
			c.loops.Done()
		}
	}()
	// A reader that took over from one stuck in an inline call (see
	// watchdog) writes the answers of the calls that ran before it in its
	// burst at once: it may wait long for its first frame, and the stuck
	// one writes only once its handler returns.
	c.flushPending()
	r := c.rd
	var buf int32
	for {
		h, p, err := r.Next()
		if n := int32(r.BufferSize()); n != buf {
			buf = n
			c.readBuf.Store(n)
		}
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) {
				c.protocolError(err)
				return
			}
			if err == io.ErrUnexpectedEOF {
				c.protocolError(fmt.Errorf("connection ended inside a frame: %w", err))
				return
			}
			c.closeWith(c.lostConnection(err))
			return
		}
		c.recvFlag.Store(true)
		if c.cfg.Observer != nil {
			if n := r.Reads(); n != c.reads {
				c.reads, c.arrived = n, now() // one clock read per read, not per frame
			}
		}
		if err := c.dispatch(h, p); err != nil {
			if err == errHandedOff {
				handedOff = true
				return
			}
			c.protocolError(err)
			return
		}
		if c.rpend && !r.Ready() {
			// The answers of inline calls leave once no whole frame is
			// buffered: a burst's answers in one write, and none waits
			// for input.
			c.flushPending()
		}
	}
}

func (c *Conn) dispatch(h wire.Header, p []byte) error {
	switch h.Type {
	case wire.TypeCall:
		return c.incoming(h, p)
	case wire.TypeResult, wire.TypeError:
		return c.answer(h, p)
	case wire.TypeCancel:
		cause := context.Canceled
		switch {
		case len(p) == 1 && p[0] == byte(status.DeadlineExceeded):
			cause = context.DeadlineExceeded
		case len(p) > 1 || (len(p) == 1 && p[0] != byte(status.Canceled)):
			return fmt.Errorf("CANCEL with a malformed %d-byte reason", len(p))
		}
		c.cancelIncoming(h.ID, cause)
		return nil
	case wire.TypePing:
		v, err := wire.ParsePing(h.Type, p)
		if err != nil {
			return err
		}
		c.sendPing(true, v)
		return nil
	case wire.TypePong:
		v, err := wire.ParsePing(h.Type, p)
		if err == nil && c.cfg.Heartbeat != nil {
			c.pong(v)
		}
		return err
	case wire.TypeGoAway:
		g, err := wire.ParseGoAway(p)
		if err != nil {
			return err
		}
		c.peerGoAway(g)
		return nil
	case wire.TypeRelease:
		if h.Flags&wire.FlagCapability != 0 { // the peer drops references to an export
			n, err := wire.ParseRelease(p)
			if err != nil {
				return err
			}
			if r, ok := c.cfg.Handler.(Releaser); ok {
				r.Release(c, h.ID, n)
			}
			return nil
		}
		if len(p) != 0 {
			return fmt.Errorf("RELEASE frame with a %d-byte payload", len(p))
		}
		c.release(h.ID)
		return nil
	case wire.TypeData, wire.TypeEnd, wire.TypeCredit:
		return c.streamFrame(h, p)
	case wire.TypePad:
		return wire.CheckPad(p)
	case wire.TypeHello:
		return fmt.Errorf("second HELLO frame")
	}
	return fmt.Errorf("%s frames are not supported by this peer", h.Type)
}
