package conn

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// stalledPeer is a peer on a net.Pipe that sends its HELLO, reads the
// first frames until it has seen calls CALL frames (their ids go to
// ids), then stops reading until resume is closed (a peer busy
// elsewhere: this side's writes back up). It returns a client Conn
// with a small write queue and the peer's end. A pipe, not TCP: a pipe
// whose reader stops stalls the writer at once and for good, where
// loopback TCP's buffers keep absorbing a trickle (the queue drained
// within 100 ms of a stop in trials), so the stall the tests need could
// not be held.
func stalledPeer(t *testing.T, calls int, ids chan<- uint64, resume <-chan struct{}) (*Conn, net.Conn) {
	t.Helper()
	cnc, snc := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		go snc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Hour}))
		r := wire.NewReader(snc, 64<<10, 1<<20)
		seen := 0
		for {
			if seen == calls {
				<-resume
				seen++
			}
			h, _, err := r.Next()
			if err != nil {
				return
			}
			if h.Type == wire.TypeCall && seen < calls {
				seen++
				ids <- h.ID
			}
		}
	}()
	c, err := Client(cnc, Config{KeepAlive: time.Hour, MaxPendingWrite: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		snc.Close()
		<-done
	})
	return c, snc
}

// fillWriteQueue queues calls until this side's write queue is over its
// bound with a write in progress (the peer reads nothing): a writer that
// waits for room now waits until the peer reads again.
func fillWriteQueue(t *testing.T, ctx context.Context, c *Conn) {
	t.Helper()
	big := make([]byte, 4096)
	for i := 0; ; i++ {
		c.wmu.Lock()
		full := len(c.wbuf)+c.wsegBytes >= c.cfg.MaxPendingWrite && c.writing && c.werr == nil
		c.wmu.Unlock()
		if full {
			return
		}
		if i > 200 {
			t.Fatal("the write queue never filled")
		}
		go c.Go(ctx, &Outgoing{Function: "fill", Args: big}) // blocks once full, until the peer reads or ctx ends
		time.Sleep(10 * time.Millisecond)
	}
}

// crossedSetup makes call A (a promise) and call D on a stalledPeer,
// both read by the peer, and fills this side's write queue: the peer now
// reads nothing, and cancelling A queues its CANCEL behind the rest.
// errD gets D's outcome.
func crossedSetup(t *testing.T) (c *Conn, snc net.Conn, a *Async, idA, idD uint64, errD <-chan error) {
	t.Helper()
	ids := make(chan uint64, 4)
	resume := make(chan struct{})
	c, snc = stalledPeer(t, 2, ids, resume)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	fctx, fcancel := context.WithCancel(ctx)
	// Cleanups run last-in first-out: the peer reads again before the
	// contexts end, and everything can finish.
	t.Cleanup(cancel)
	t.Cleanup(fcancel)
	t.Cleanup(func() { close(resume) })
	a, err := c.Go(ctx, &Outgoing{Function: "make"})
	if err != nil {
		t.Fatal(err)
	}
	idA = <-ids
	d := make(chan error, 1)
	go func() {
		r, err := c.Call(ctx, &Outgoing{Function: "other"})
		if err == nil {
			r.Release()
		}
		d <- err
	}()
	idD = <-ids
	// The pipe has no TryWriter: a caller writes its own frame and
	// takes along what is queued meanwhile. Fill only once D's caller
	// is done writing, or it could be the one left stuck in the write
	// (and D's answer never awaited).
	for {
		c.wmu.Lock()
		writing := c.writing
		c.wmu.Unlock()
		if !writing {
			break
		}
		time.Sleep(time.Millisecond)
	}
	fillWriteQueue(t, fctx, c)
	return c, snc, a, idA, idD, d
}

// The reader must not wait for room in the write queue: the RELEASE of
// the capabilities in a RESULT that crossed this side's CANCEL is sent
// from the reader (answer), and while the peer does not read (a full
// queue) the reader stops, so that the answers already arrived behind it
// (here: call D's) are never delivered.
func TestCrossedResultReleaseDoesNotBlockReader(t *testing.T) {
	_, snc, a, idA, idD, errD := crossedSetup(t)
	a.Cancel() // CANCEL queued without waiting; A's RESULT crosses it
	go func() {
		snc.Write(wire.AppendResult(nil, idA, []byte{0xc0}, nil, []wire.CapDescriptor{{Kind: wire.CapSenderHosted, ID: 7}}))
		snc.Write(wire.AppendResult(nil, idD, []byte{0xc0}, nil, nil))
	}()
	select {
	case err := <-errD:
		if err != nil {
			t.Fatalf("call D: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("call D's RESULT, sent after the crossed RESULT of A, was not delivered within 1 s: the reader waits for room in the write queue to release A's capability")
	}
}

// A peer that sends crossed RESULTs with capabilities (here the same
// cancelled call's, again and again) without reading cannot grow this
// side's write queue with the RELEASEs they call for.
func TestCrossedResultReleasesBounded(t *testing.T) {
	c, snc, a, idA, idD, errD := crossedSetup(t)
	a.Cancel()
	c.wmu.Lock()
	before := len(c.wbuf)
	c.wmu.Unlock()
	const n = 2000
	go func() {
		var b []byte
		for range n {
			b = wire.AppendResult(b, idA, []byte{0xc0}, nil, []wire.CapDescriptor{{Kind: wire.CapSenderHosted, ID: 7}})
		}
		b = wire.AppendResult(b, idD, []byte{0xc0}, nil, nil)
		snc.Write(b)
	}()
	select {
	case err := <-errD:
		if err != nil {
			t.Fatalf("call D: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call D's RESULT was not delivered")
	}
	c.wmu.Lock()
	grew := len(c.wbuf) - before
	c.wmu.Unlock()
	if grew > c.cfg.MaxPendingWrite {
		t.Errorf("%d crossed RESULTs grew the unread write queue by %d bytes (bound %d)", n, grew, c.cfg.MaxPendingWrite)
	}
}
