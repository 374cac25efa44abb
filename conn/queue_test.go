package conn

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// stuckWriter returns a client whose peer never reads, and whose writer
// is stuck writing a large call: the calls after it queue (up to a
// MaxPendingWrite of 64 KiB).
func stuckWriter(t *testing.T) *Conn {
	t.Helper()
	cc, _ := writeStuckPeer(t, Config{MaxPendingWrite: 64 << 10})
	// (Go leaves the write to the writer goroutine, which waits in it as
	// long as the socket does.)
	if _, err := cc.Go(context.Background(), out("echo", nil, make([]byte, 32<<20))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		cc.wmu.Lock()
		defer cc.wmu.Unlock()
		return cc.writing && len(cc.wbuf)+cc.wsegBytes == 0
	}, "a stuck write")
	return cc
}

// fillQueue queues a call that fills cc's write queue.
func fillQueue(t *testing.T, cc *Conn) {
	t.Helper()
	if _, err := cc.Go(context.Background(), out("echo", nil, make([]byte, 128<<10))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		cc.wmu.Lock()
		defer cc.wmu.Unlock()
		return cc.writing && len(cc.wbuf)+cc.wsegBytes >= cc.cfg.MaxPendingWrite
	}, "a full write queue")
}

// awaitCall waits for a call's outcome, failing if it takes seconds.
func awaitCall(t *testing.T, cc *Conn, errc <-chan error, want status.Code) {
	t.Helper()
	select {
	case err := <-errc:
		if status.CodeOf(err) != want {
			t.Fatalf("got %v, want %v", err, want)
		}
	case <-time.After(5 * time.Second):
		cc.Close()
		<-errc
		t.Fatal("a call outlived its context by seconds, waiting for room in the write queue")
	}
}

// A call whose context ends while it waits for room in a full write queue
// (the peer does not read) returns with the context's error, instead of
// waiting for the socket to drain.
func TestCallGivesUpWaitingForQueueRoom(t *testing.T) {
	cc := stuckWriter(t)
	fillQueue(t, cc)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := cc.Call(ctx, out("echo", nil, []byte("x"))); errc <- err }()
	awaitCall(t, cc, errc, status.DeadlineExceeded)
}

// A call cancelled once it is queued returns at once, as Call's doc says,
// even when the write queue is full: its CANCEL does not wait for room.
func TestCancelledCallDoesNotWaitForQueueRoom(t *testing.T) {
	cc := stuckWriter(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := cc.Call(ctx, out("echo", nil, []byte("x"))); errc <- err }()
	waitFor(t, func() bool { cc.cmu.Lock(); defer cc.cmu.Unlock(); return cc.calls.len() == 2 }, "the call queued")
	fillQueue(t, cc)
	cancel()
	awaitCall(t, cc, errc, status.Canceled)
}

// A peer that sends calls and never reads their answers has no more
// calls served at once (each on a worker) than MaxConcurrent: a call
// counted as done once its answer was computed, not queued, let every
// worker that waits for room in the full write queue make room for a new
// call, and so a new worker.
func TestNonReaderCannotGrowWorkers(t *testing.T) {
	const limit = 32
	addr, ready := serveOne(t, Config{MaxConcurrent: limit, MaxPendingWrite: 4 << 10, Handler: HandlerFunc(echo)})
	nc := hostilePeer(t, addr)
	sc := <-ready
	if sc == nil {
		t.Fatal("server set-up failed")
	}
	t.Cleanup(func() { sc.Close() })
	args := make([]byte, 1<<10)
	var sent atomic.Int64
	go func() {
		var b []byte
		for i := 0; i < 20000; i++ { // 20 MiB of calls; their answers fill the socket's buffers
			var at int
			b, at = wire.AppendCall(b[:0], &wire.CallFrame{ID: uint64(2*i + 1), Function: "echo"})
			b = append(b, args...)
			wire.EndFrame(b, at)
			if _, err := nc.Write(b); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	// Once the peer's writes have stalled (the server no longer reads),
	// the calls still served are those waiting to queue their answers.
	deadline := time.Now().Add(10 * time.Second)
	for prev, stable := int64(-1), 0; stable < 25; {
		if time.Now().After(deadline) {
			t.Fatalf("the peer's writes never stalled: %d calls sent", sent.Load())
		}
		time.Sleep(20 * time.Millisecond)
		if n := sent.Load(); n == prev {
			stable++
		} else {
			prev, stable = n, 0
		}
	}
	sc.smu.Lock()
	n := sc.serving.len()
	sc.smu.Unlock()
	if n > limit+1 { // the call whose worker is writing has given up its count
		t.Fatalf("%d calls served at once (each a worker) for a peer that does not read, with MaxConcurrent %d", n, limit)
	}
}

// A stream message or half-close waiting for room in a full write queue
// (the peer does not read) gives up when the stream's context ends: the
// opener then learns why from the stream, not seconds later from the
// keep-alive.
func TestStreamSendGivesUpWaitingForQueueRoom(t *testing.T) {
	for _, op := range []string{"Send", "CloseSend"} {
		t.Run(op, func(t *testing.T) {
			cc := stuckWriter(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := cc.OpenStream(ctx, out("chat", nil, nil))
			if err != nil {
				t.Fatal(err)
			}
			fillQueue(t, cc)
			errc := make(chan error, 1)
			go func() {
				if op == "Send" {
					errc <- s.Send([]byte("x"))
				} else {
					errc <- s.CloseSend()
				}
			}()
			// It waits while the queue is full; then the context ends.
			select {
			case err := <-errc:
				t.Fatalf("%s returned %v with the queue full", op, err)
			case <-time.After(50 * time.Millisecond):
			}
			cancel()
			select {
			case err := <-errc:
				if op == "Send" && status.CodeOf(err) != status.Canceled {
					t.Fatalf("Send: %v, want Canceled", err)
				}
			case <-time.After(5 * time.Second):
				cc.Close()
				<-errc
				t.Fatalf("%s outlived its stream's context by seconds, waiting for room in the write queue", op)
			}
		})
	}
}
