package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// floorUDP is the least a request/response exchange over UDP can cost
// here, the floor under any QUIC stack: one datagram each way per call,
// [8-byte id][payload], no crypto, no acknowledgements, no flow control.
// The caller sends its own datagram (no writer hand-off); one client
// goroutine reads answers and dispatches them by id; the server answers
// inline from one goroutine. A datagram lost on the loopback (a full
// socket buffer) is sent again after floorUDPResend, so a drop costs time,
// never a hung cell.

const (
	floorUDPIDLen = 8
	// floorUDPMaxPayload keeps a request in one datagram with room to
	// spare under the 65,507-byte UDP limit.
	floorUDPMaxPayload = 60000
	floorUDPResend     = 50 * time.Millisecond
)

var errFloorUDPClosed = errors.New("floor-udp: connection closed")

func init() {
	registerTransport(transportSystem{
		system: "floor", transport: "tcp",
		note:  "the unary section's floor: hand-written length-prefixed TCP echo (lower bound over TCP)",
		start: startFloor,
	})
	registerTransport(transportSystem{
		system: "floor", transport: "udp",
		note:  fmt.Sprintf("hand-written UDP echo, one datagram each way, no crypto or acks (lower bound under QUIC); payloads up to %d bytes", floorUDPMaxPayload),
		start: startFloorUDP,
	})
}

// maxPayloader is a Runner that cannot carry every payload; cells above
// MaxPayload are not measured and the table says why.
type maxPayloader interface {
	MaxPayload() (n int, why string)
}

type floorUDPRunner struct {
	srv *net.UDPConn
	cli *floorUDPClient
	wg  sync.WaitGroup
}

func startFloorUDP(ctx context.Context) (Runner, error) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", srv.LocalAddr().String())
	if err != nil {
		srv.Close()
		return nil, err
	}
	r := &floorUDPRunner{srv: srv, cli: newFloorUDPClient(c.(*net.UDPConn))}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		floorUDPServe(srv)
	}()
	return r, nil
}

func (r *floorUDPRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return r.cli.call(ctx, payload)
}

func (r *floorUDPRunner) MaxPayload() (int, string) {
	return floorUDPMaxPayload, "one datagram carries the whole payload"
}

func (r *floorUDPRunner) Close() error {
	err := r.cli.close()
	r.srv.Close()
	r.wg.Wait()
	return err
}

// floorUDPServe echoes every datagram back to its sender, inline.
func floorUDPServe(c *net.UDPConn) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if n < floorUDPIDLen {
			continue
		}
		if _, err := c.WriteToUDPAddrPort(buf[:n], addr); err != nil {
			return
		}
	}
}

// floorUDPWaiter is pooled like floorWaiter: the id is gen<<32 | slot, so
// a late or duplicate answer never reaches the slot's next user.
type floorUDPWaiter struct {
	slot  uint32
	gen   uint32
	ch    chan []byte // cap 1
	req   []byte      // the datagram, kept to send again
	timer *time.Timer // resend timer, reused

	inUse, delivered bool // guarded by floorUDPClient.mu
}

type floorUDPClient struct {
	conn *net.UDPConn

	mu    sync.Mutex
	slots []*floorUDPWaiter
	free  []*floorUDPWaiter
	err   error

	wg   sync.WaitGroup
	once sync.Once
}

func newFloorUDPClient(conn *net.UDPConn) *floorUDPClient {
	c := &floorUDPClient{conn: conn}
	c.wg.Add(1)
	go c.readLoop()
	return c
}

func (c *floorUDPClient) call(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > floorUDPMaxPayload {
		return nil, fmt.Errorf("floor-udp: payload of %d bytes exceeds one datagram (%d)", len(payload), floorUDPMaxPayload)
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	var w *floorUDPWaiter
	if n := len(c.free); n > 0 {
		w, c.free = c.free[n-1], c.free[:n-1]
	} else {
		w = &floorUDPWaiter{slot: uint32(len(c.slots)), ch: make(chan []byte, 1), timer: time.NewTimer(time.Hour)}
		w.timer.Stop()
		c.slots = append(c.slots, w)
	}
	w.inUse = true
	c.mu.Unlock()

	w.req = binary.BigEndian.AppendUint64(w.req[:0], uint64(w.gen)<<32|uint64(w.slot))
	w.req = append(w.req, payload...)
	if _, err := c.conn.Write(w.req); err != nil {
		c.put(w)
		return nil, err
	}
	w.timer.Reset(floorUDPResend)
	defer w.timer.Stop()
	for {
		select {
		case b := <-w.ch:
			c.put(w)
			if b == nil {
				return nil, c.failure()
			}
			return b, nil
		case <-w.timer.C:
			if _, err := c.conn.Write(w.req); err != nil {
				c.abandon(w)
				return nil, err
			}
			w.timer.Reset(floorUDPResend)
		case <-ctx.Done():
			c.abandon(w)
			return nil, ctx.Err()
		}
	}
}

func (c *floorUDPClient) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *floorUDPClient) put(w *floorUDPWaiter) {
	c.mu.Lock()
	w.gen++
	w.inUse, w.delivered = false, false
	c.free = append(c.free, w)
	c.mu.Unlock()
}

// abandon retires w's slot for good: an answer may still be in flight and
// the channel may hold one, so the slot is not reused.
func (c *floorUDPClient) abandon(w *floorUDPWaiter) {
	c.mu.Lock()
	w.gen++
	c.mu.Unlock()
}

func (c *floorUDPClient) readLoop() {
	defer c.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			c.fail(err)
			return
		}
		if n < floorUDPIDLen {
			continue
		}
		id := binary.BigEndian.Uint64(buf)
		slot, gen := uint32(id), uint32(id>>32)
		c.mu.Lock()
		if int(slot) >= len(c.slots) {
			c.mu.Unlock()
			continue
		}
		w := c.slots[slot]
		if !w.inUse || w.gen != gen || w.delivered {
			c.mu.Unlock()
			continue // a duplicate, or an answer to an abandoned call
		}
		w.delivered = true
		c.mu.Unlock()
		w.ch <- append([]byte(nil), buf[floorUDPIDLen:n]...) // the returned copy
	}
}

// fail makes the client unusable and wakes every pending caller.
func (c *floorUDPClient) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for _, w := range c.slots {
		if w.inUse && !w.delivered {
			w.delivered = true
			w.ch <- nil // cap 1 and empty: never blocks
		}
	}
}

func (c *floorUDPClient) close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = errFloorUDPClosed
		}
		c.mu.Unlock()
		err = c.conn.Close()
		c.wg.Wait()
		c.mu.Lock()
		for _, w := range c.slots {
			if w.inUse && !w.delivered {
				w.delivered = true
				w.ch <- nil
			}
		}
		c.mu.Unlock()
	})
	return err
}
