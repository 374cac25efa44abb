package transport

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// memBufSize bounds the bytes buffered in each direction of a mem:
// connection; a writer blocks while its peer's buffer is full.
const memBufSize = 1 << 20

// memPipe is one direction of a mem: connection: a bounded byte buffer
// between a writing end and a reading end.
type memPipe struct {
	mu      sync.Mutex
	buf     []byte // unread bytes are buf[off:]
	off     int
	wclosed bool          // the writing end closed: reads drain, then io.EOF
	rclosed bool          // the reading end closed: writes fail
	wake    chan struct{} // closed (and cleared) on any change; nil when nobody waits
}

// waitChan returns a channel closed at the next change. Call with mu held.
func (p *memPipe) waitChan() <-chan struct{} {
	if p.wake == nil {
		p.wake = make(chan struct{})
	}
	return p.wake
}

// broadcast wakes every waiter. Call with mu held.
func (p *memPipe) broadcast() {
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// memConn is one end of a mem: connection.
type memConn struct {
	rp, wp        *memPipe // read from rp, write to wp
	local, remote memAddr
	rdl, wdl      deadline
	closeOnce     sync.Once
	closed        chan struct{} // closed by Close
}

// newMemConnPair returns the two connected ends of a new connection.
func newMemConnPair(a, b memAddr) (*memConn, *memConn) {
	ab, ba := new(memPipe), new(memPipe)
	ca := &memConn{rp: ba, wp: ab, local: a, remote: b, closed: make(chan struct{})}
	cb := &memConn{rp: ab, wp: ba, local: b, remote: a, closed: make(chan struct{})}
	for _, c := range []*memConn{ca, cb} {
		c.rdl.cancel = make(chan struct{})
		c.wdl.cancel = make(chan struct{})
	}
	return ca, cb
}

func (c *memConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: SchemeMem, Source: c.local, Addr: c.remote, Err: err}
}

// check returns the error that op must fail with now, if any: the
// connection is closed or the deadline d has passed.
func (c *memConn) check(op string, d *deadline) error {
	select {
	case <-c.closed:
		return c.opError(op, net.ErrClosed)
	default:
	}
	select {
	case <-d.wait():
		return c.opError(op, os.ErrDeadlineExceeded)
	default:
	}
	return nil
}

// await blocks until ch is closed, the connection closes or the deadline
// d passes, returning the error for the latter two.
func (c *memConn) await(op string, ch <-chan struct{}, d *deadline) error {
	select {
	case <-ch:
		return nil
	case <-c.closed:
		return c.opError(op, net.ErrClosed)
	case <-d.wait():
		return c.opError(op, os.ErrDeadlineExceeded)
	}
}

// Read reads buffered bytes, waiting for some if there are none. Once the
// peer has closed (or called CloseWrite) and the buffer is drained, it
// returns io.EOF.
func (c *memConn) Read(b []byte) (int, error) {
	p := c.rp
	for {
		if err := c.check("read", &c.rdl); err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, nil
		}
		p.mu.Lock()
		if p.off < len(p.buf) {
			n := copy(b, p.buf[p.off:])
			p.off += n
			if p.off == len(p.buf) {
				p.buf, p.off = p.buf[:0], 0
			}
			p.broadcast()
			p.mu.Unlock()
			return n, nil
		}
		if p.wclosed {
			p.mu.Unlock()
			return 0, io.EOF
		}
		ch := p.waitChan()
		p.mu.Unlock()
		if err := c.await("read", ch, &c.rdl); err != nil {
			return 0, err
		}
	}
}

// Write copies b into the peer's buffer, blocking while the buffer is
// full. It fails once either end has closed; on an error it reports how
// many bytes were buffered before it.
func (c *memConn) Write(b []byte) (int, error) {
	p := c.wp
	n := 0
	for {
		if err := c.check("write", &c.wdl); err != nil {
			return n, err
		}
		p.mu.Lock()
		if p.rclosed || p.wclosed {
			p.mu.Unlock()
			return n, c.opError("write", io.ErrClosedPipe)
		}
		if free := memBufSize - (len(p.buf) - p.off); free > 0 && n < len(b) {
			chunk := b[n:]
			if len(chunk) > free {
				chunk = chunk[:free]
			}
			if p.off > 0 && cap(p.buf)-len(p.buf) < len(chunk) {
				m := copy(p.buf, p.buf[p.off:])
				p.buf, p.off = p.buf[:m], 0
			}
			p.buf = append(p.buf, chunk...)
			n += len(chunk)
			p.broadcast()
		}
		if n == len(b) {
			p.mu.Unlock()
			return n, nil
		}
		ch := p.waitChan()
		p.mu.Unlock()
		if err := c.await("write", ch, &c.wdl); err != nil {
			return n, err
		}
	}
}

// Close closes both directions: the peer's reads drain what was written
// and then return io.EOF, the peer's writes fail, and this end's pending
// and future calls return net.ErrClosed. Bytes sent to this end and not
// yet read are dropped.
func (c *memConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		close(c.closed)
		c.rp.mu.Lock()
		c.rp.rclosed = true
		c.rp.buf, c.rp.off = nil, 0
		c.rp.broadcast()
		c.rp.mu.Unlock()
		c.closeWrite()
		c.rdl.set(time.Time{})
		c.wdl.set(time.Time{})
	})
	if !first {
		return c.opError("close", net.ErrClosed)
	}
	return nil
}

// CloseWrite shuts down the writing direction: the peer reads what was
// written and then io.EOF, while this end can still read.
func (c *memConn) CloseWrite() error {
	select {
	case <-c.closed:
		return c.opError("close", net.ErrClosed)
	default:
	}
	c.closeWrite()
	return nil
}

func (c *memConn) closeWrite() {
	c.wp.mu.Lock()
	c.wp.wclosed = true
	c.wp.broadcast()
	c.wp.mu.Unlock()
}

// LocalAddr returns this end's address; its Network is "mem".
func (c *memConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address; its Network is "mem".
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both the read and the write deadline.
func (c *memConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets when pending and future Reads fail with an error
// wrapping os.ErrDeadlineExceeded; the zero time means never.
func (c *memConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(&c.rdl, t)
}

// SetWriteDeadline sets when pending and future Writes fail with an error
// wrapping os.ErrDeadlineExceeded; the zero time means never.
func (c *memConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(&c.wdl, t)
}

func (c *memConn) setDeadline(d *deadline, t time.Time) error {
	select {
	case <-c.closed:
		return c.opError("set deadline", net.ErrClosed)
	default:
	}
	d.set(t)
	return nil
}

// deadline is a settable point in time exposed as a channel that is closed
// once it has passed, as in net.Pipe.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes; never nil
}

// set arms the deadline at t; the zero time disarms it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close cancel
	}
	d.timer = nil
	passed := isClosed(d.cancel)
	if t.IsZero() {
		if passed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !passed {
		close(d.cancel)
	}
}

// wait returns a channel that is closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
