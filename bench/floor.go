package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// floor is the least a multiplexed request/response protocol can cost here:
// one TCP connection, frames of [4-byte payload length][8-byte id][payload],
// client-side write coalescing and id-based dispatch, and a server that
// answers inline and flushes only when it has no more input buffered. No
// per-call allocation beyond the copy of the returned payload.

const (
	floorHdrLen   = 12
	floorMaxFrame = 64 << 20
	floorBufSize  = 64 << 10
)

var errFloorClosed = errors.New("floor: connection closed")

func init() {
	register(system{
		name:  "floor",
		note:  "hand-written length-prefixed TCP echo; coalescing writer, id dispatch (lower bound)",
		start: startFloor,
	})
}

type floorRunner struct {
	srv *floorServer
	cli *floorClient
}

func startFloor(ctx context.Context) (Runner, error) {
	srv, err := newFloorServer()
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", srv.ln.Addr().String())
	if err != nil {
		srv.close()
		return nil, err
	}
	return &floorRunner{srv: srv, cli: newFloorClient(conn)}, nil
}

func init() {
	registerRemote(remoteSystem{name: "floor",
		serve: func(context.Context) (string, func(), error) {
			srv, err := newFloorServer()
			if err != nil {
				return "", nil, err
			}
			return srv.ln.Addr().String(), srv.close, nil
		},
		dial: dialFloor,
	})
}

// floorConn is one client connection alone.
type floorConn struct{ cli *floorClient }

func (c floorConn) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return c.cli.call(ctx, payload)
}
func (c floorConn) Close() error { return c.cli.close() }

func dialFloor(ctx context.Context, addr string) (Runner, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return floorConn{newFloorClient(conn)}, nil
}

// Dial implements Dialer.
func (r *floorRunner) Dial(ctx context.Context) (Runner, error) {
	return dialFloor(ctx, r.srv.ln.Addr().String())
}

func (r *floorRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return r.cli.call(ctx, payload)
}

func (r *floorRunner) Close() error {
	err := r.cli.close()
	r.srv.close()
	return err
}

// ---- server ----

type floorServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newFloorServer() (*floorServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &floorServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

func (s *floorServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conns == nil { // closed
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			floorServeConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *floorServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}

// floorServeConn echoes every request inline. Responses accumulate in the
// bufio.Writer and are flushed only once the reader has nothing buffered,
// so a burst of pipelined requests is answered with one write.
func floorServeConn(c net.Conn) {
	br := bufio.NewReaderSize(c, floorBufSize)
	bw := bufio.NewWriterSize(c, floorBufSize)
	hdr := make([]byte, floorHdrLen)
	var big []byte
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr))
		if n > floorMaxFrame {
			return
		}
		if _, err := bw.Write(hdr); err != nil {
			return
		}
		if n <= br.Size() {
			// Zero-copy path: echo straight out of the read buffer.
			p, err := br.Peek(n)
			if err != nil {
				return
			}
			if _, err := bw.Write(p); err != nil {
				return
			}
			if _, err := br.Discard(n); err != nil {
				return
			}
		} else {
			if cap(big) < n {
				big = make([]byte, n)
			}
			big = big[:n]
			if _, err := io.ReadFull(br, big); err != nil {
				return
			}
			if _, err := bw.Write(big); err != nil {
				return
			}
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

// ---- client ----

type floorResult struct {
	b   []byte
	err error
}

// floorWaiter is pooled: it lives in client.slots forever and is recycled
// through client.free. The wire id is gen<<32 | slot, so a late response to
// an abandoned (cancelled) call can never reach the waiter's next user.
type floorWaiter struct {
	slot uint32
	gen  uint32
	ch   chan floorResult // cap 1; exactly one result per use

	// guarded by floorClient.mu
	inUse     bool
	delivered bool // a result has been (or is being) sent on ch
	abandoned bool // the caller gave up; the reader recycles it
}

type floorClient struct {
	conn net.Conn

	mu    sync.Mutex
	out   []byte // queued request frames
	slots []*floorWaiter
	free  []*floorWaiter
	err   error // sticky; set once the connection is unusable

	wake chan struct{} // cap 1: "out is non-empty"
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newFloorClient(conn net.Conn) *floorClient {
	c := &floorClient{
		conn: conn,
		out:  make([]byte, 0, floorBufSize),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	c.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	return c
}

func (c *floorClient) call(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > floorMaxFrame {
		return nil, fmt.Errorf("floor: payload of %d bytes exceeds %d", len(payload), floorMaxFrame)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	w := c.getWaiterLocked()
	c.out = binary.BigEndian.AppendUint32(c.out, uint32(len(payload)))
	c.out = binary.BigEndian.AppendUint64(c.out, uint64(w.gen)<<32|uint64(w.slot))
	c.out = append(c.out, payload...)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the writer is already due to run
	}

	var r floorResult
	if done := ctx.Done(); done == nil {
		r = <-w.ch
	} else {
		select {
		case r = <-w.ch:
		case <-done:
			c.abandon(w)
			return nil, ctx.Err()
		}
	}
	c.mu.Lock()
	c.putWaiterLocked(w)
	c.mu.Unlock()
	return r.b, r.err
}

func (c *floorClient) getWaiterLocked() *floorWaiter {
	var w *floorWaiter
	if n := len(c.free); n > 0 {
		w = c.free[n-1]
		c.free = c.free[:n-1]
	} else {
		w = &floorWaiter{slot: uint32(len(c.slots)), ch: make(chan floorResult, 1)}
		c.slots = append(c.slots, w)
	}
	w.inUse = true
	return w
}

func (c *floorClient) putWaiterLocked(w *floorWaiter) {
	w.gen++
	w.inUse, w.delivered, w.abandoned = false, false, false
	c.free = append(c.free, w)
}

// abandon is called when a caller's context ends before its response.
func (c *floorClient) abandon(w *floorWaiter) {
	c.mu.Lock()
	if !w.delivered {
		w.abandoned = true // the reader (or fail) recycles it
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	<-w.ch // the result is in flight; drain it before recycling
	c.mu.Lock()
	c.putWaiterLocked(w)
	c.mu.Unlock()
}

func (c *floorClient) writeLoop() {
	defer c.wg.Done()
	spare := make([]byte, 0, floorBufSize)
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		buf := c.out
		c.out = spare[:0]
		c.mu.Unlock()
		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				c.fail(err)
				return
			}
		}
		spare = buf[:0]
	}
}

func (c *floorClient) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.conn, floorBufSize)
	hdr := make([]byte, floorHdrLen)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			c.fail(err)
			return
		}
		n := binary.BigEndian.Uint32(hdr)
		id := binary.BigEndian.Uint64(hdr[4:])
		if n > floorMaxFrame {
			c.fail(fmt.Errorf("floor: response frame of %d bytes", n))
			return
		}
		b := make([]byte, n) // the one per-call allocation: the returned copy
		if _, err := io.ReadFull(br, b); err != nil {
			c.fail(err)
			return
		}
		slot, gen := uint32(id), uint32(id>>32)
		c.mu.Lock()
		if int(slot) >= len(c.slots) {
			c.mu.Unlock()
			continue
		}
		w := c.slots[slot]
		if !w.inUse || w.gen != gen || w.delivered {
			c.mu.Unlock()
			continue
		}
		if w.abandoned {
			c.putWaiterLocked(w)
			c.mu.Unlock()
			continue
		}
		w.delivered = true
		c.mu.Unlock()
		w.ch <- floorResult{b: b}
	}
}

// fail makes the client unusable and wakes every pending caller with err.
func (c *floorClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	select {
	case <-c.done:
		err = errFloorClosed
	default:
	}
	c.err = err
	for _, w := range c.slots {
		if w.inUse && !w.delivered && !w.abandoned {
			w.delivered = true
			w.ch <- floorResult{err: err} // cap 1 and empty: never blocks
		}
	}
}

func (c *floorClient) close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.conn.Close()
		c.fail(errFloorClosed)
		c.wg.Wait()
	})
	return err
}
