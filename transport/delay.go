package transport

import (
	"net"
	"sync"
	"time"
)

// delayMaxPending is how many bytes a delayed connection holds before
// Write blocks (a generous socket buffer).
const delayMaxPending = 4 << 20

// delayCloseTimeout bounds how long Close keeps trying to deliver pending
// data to a peer that does not read it, beyond the delay itself.
const delayCloseTimeout = time.Second

// Delay wraps c so that every chunk written to it reaches c only d after
// its Write: the peer can read it no sooner, as over a link with a one-way
// latency of d. It emulates a slow network without netem; delaying both
// ends of a connection gives a round trip of at least 2d.
//
// Write copies its argument and returns at once; one goroutine per
// connection writes the chunks to c in order, each when its time comes.
// Up to 4 MiB may be in flight; past that Write waits for delivery to
// catch up, like a full socket buffer. If writing to c fails, the error
// is kept and every later Write returns it. Reads, addresses and deadlines
// go straight to c: the write deadline bounds the delayed writes to c,
// not Write itself.
//
// Close refuses further writes, unblocks any Read, delivers what is still
// pending when its time comes (so Close can take up to d, and up to a
// second longer if the peer does not take the data), then closes c. When
// Close returns, the goroutine has ended.
//
// The result is a plain net.Conn: it hides any other methods of c, such
// as the native streams of a StreamConn.
func Delay(c net.Conn, d time.Duration) net.Conn {
	dc := &delayConn{Conn: c, d: d, done: make(chan struct{})}
	dc.cond.L = &dc.mu
	go dc.deliver()
	return dc
}

// DelayListener wraps l so that every connection it accepts is delayed by
// d (see Delay). Use it on a server to delay what the server sends.
func DelayListener(l Listener, d time.Duration) Listener {
	return &delayListener{Listener: l, d: d}
}

type delayListener struct {
	Listener
	d time.Duration
}

// Accept implements net.Listener.
func (l *delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Delay(c, l.d), nil
}

type delayChunk struct {
	at time.Time
	b  []byte
}

type delayConn struct {
	net.Conn
	d    time.Duration
	done chan struct{} // closed when deliver returns

	mu      sync.Mutex
	cond    sync.Cond // signalled on every change of queue, closed or err
	queue   []delayChunk
	pending int // bytes in queue
	closed  bool
	err     error // the first failed write to Conn

	closeOnce sync.Once
	closeErr  error
}

// Write implements net.Conn.
func (c *delayConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && c.err == nil && c.pending > 0 && c.pending+len(b) > delayMaxPending {
		c.cond.Wait()
	}
	switch {
	case c.closed:
		return 0, net.ErrClosed
	case c.err != nil:
		return 0, c.err
	case len(b) == 0:
		return 0, nil
	}
	c.queue = append(c.queue, delayChunk{at: time.Now().Add(c.d), b: append([]byte(nil), b...)})
	c.pending += len(b)
	c.cond.Broadcast()
	return len(b), nil
}

// deliver writes the queued chunks to Conn, each at its time, until the
// connection is closed and the queue drained, or a write fails.
func (c *delayConn) deliver() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.queue) == 0 {
			return // closed and flushed
		}
		ch := c.queue[0]
		c.queue[0] = delayChunk{}
		c.queue = c.queue[1:]
		c.mu.Unlock()
		time.Sleep(time.Until(ch.at))
		_, err := c.Conn.Write(ch.b)
		c.mu.Lock()
		c.pending -= len(ch.b)
		c.cond.Broadcast()
		if err != nil {
			c.err = err
			c.queue, c.pending = nil, 0
			return
		}
	}
}

// Read implements net.Conn.
func (c *delayConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.mu.Lock()
		if c.closed {
			err = net.ErrClosed
		}
		c.mu.Unlock()
	}
	return n, err
}

// Close implements net.Conn: it delivers pending data, then closes the
// underlying connection (see Delay).
func (c *delayConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
		// Unblock Read now; give up delivering to a peer that does not
		// read (everything pending is due within d).
		now := time.Now()
		_ = c.Conn.SetReadDeadline(now)
		_ = c.Conn.SetWriteDeadline(now.Add(c.d + delayCloseTimeout))
		<-c.done
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}
