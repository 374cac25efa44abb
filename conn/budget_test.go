package conn

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// hostilePeer dials addr, does the HELLO exchange by hand and returns the
// raw connection: what it writes and reads from then on is up to the test.
func hostilePeer(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 8 << 20, KeepAlive: time.Hour})); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(nc, 4096, 1<<20)
	if h, _, err := r.Next(); err != nil || h.Type != wire.TypeHello {
		t.Fatalf("server HELLO: %v %v", h, err)
	}
	return nc
}

// serveOne accepts one connection on a fresh listener and serves it with
// cfg; it returns the listener's address and the server Conn once set up.
func serveOne(t *testing.T, cfg Config) (string, <-chan *Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *Conn, 1)
	go func() {
		defer l.Close()
		nc, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		c, err := Server(nc, cfg)
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return l.Addr().String(), ch
}

func echo(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
	return append(out, in.Args...), nil
}

// A peer that sends large calls and never reads the answers is held back
// by the memory budget: the server stops reading it instead of buffering,
// what it holds stays within the budget, and once the peer reads, every
// answer arrives.
func TestMemoryBudgetHoldsBackANonReader(t *testing.T) {
	const frame = 256 << 10
	const limit = 2 << 20
	addr, ready := serveOne(t, Config{MaxFrame: 1 << 20, MaxMemory: limit, MaxConcurrent: 1024, Handler: HandlerFunc(echo)})
	nc := hostilePeer(t, addr)
	sc := <-ready
	if sc == nil {
		t.Fatal("server set-up failed")
	}
	t.Cleanup(func() { sc.Close() })
	args := make([]byte, frame)
	const calls = 200 // 50 MiB: many times the budget
	var sent atomic.Int64
	writeDone := make(chan error, 1)
	go func() {
		var b []byte
		for i := 0; i < calls; i++ {
			var at int
			b, at = wire.AppendCall(b[:0], &wire.CallFrame{ID: uint64(2*i + 1), Function: "echo"})
			b = append(b, args...)
			wire.EndFrame(b, at)
			if _, err := nc.Write(b); err != nil {
				writeDone <- err
				return
			}
			sent.Add(1)
		}
		writeDone <- nil
	}()
	// The peer's writes stall: the server has stopped reading.
	var peak int64
	deadline := time.Now().Add(10 * time.Second)
	for prev, stable := int64(-1), 0; stable < 20; {
		if time.Now().After(deadline) {
			t.Fatalf("the peer's writes never stalled: %d of %d calls sent", sent.Load(), calls)
		}
		time.Sleep(10 * time.Millisecond)
		peak = max(peak, sc.mem.own.Used())
		if n := sent.Load(); n == prev {
			stable++
		} else {
			prev, stable = n, 0
		}
	}
	if n := sent.Load(); n >= calls {
		t.Fatalf("all %d calls went through without the peer reading", n)
	}
	if !sc.readPaused.Load() {
		t.Error("the reader is not paused on its budget")
	}
	if peak > limit+frame+wire.HeaderSize*4 {
		t.Errorf("the connection held %d bytes, over its budget of %d (+ one frame)", peak, limit)
	}
	t.Logf("stalled after %d of %d calls; the connection held at most %d bytes (budget %d)", sent.Load(), calls, peak, limit)
	// The peer reads: everything it sent is answered.
	got := make(chan int, 1)
	go func() {
		r := wire.NewReader(nc, 64<<10, 1<<20)
		n := 0
		for n < calls {
			h, p, err := r.Next()
			if err != nil {
				break
			}
			if h.Type == wire.TypeResult && len(p) == frame {
				n++
			}
		}
		got <- n
	}()
	if err := <-writeDone; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n := <-got; n != calls {
		t.Fatalf("%d answers of %d", n, calls)
	}
	// The last writes may still be returning on the server.
	waitFor(t, func() bool { return sc.mem.own.Used() == 0 }, "the budget to be empty once every answer is written")
}

// A shared budget bounds the sum over connections; a closed connection
// gives back what it held.
func TestSharedBudget(t *testing.T) {
	b := NewBudget(1 << 20)
	release := make(chan struct{})
	blocked := func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return append(out, 'k'), nil
	}
	var conns []*Conn
	var peers []net.Conn
	for i := 0; i < 2; i++ {
		addr, ready := serveOne(t, Config{MaxFrame: 256 << 10, MaxMemory: 1 << 20, Budget: b, Handler: HandlerFunc(blocked)})
		peers = append(peers, hostilePeer(t, addr))
		c := <-ready
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	defer close(release)
	send := func(nc net.Conn, id uint64) {
		f, at := wire.AppendCall(nil, &wire.CallFrame{ID: id, Function: "block"})
		f = append(f, make([]byte, 200<<10)...)
		wire.EndFrame(f, at)
		nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		nc.Write(f)
	}
	for i := uint64(0); i < 6; i++ { // 1.2 MiB over two connections
		send(peers[i%2], 2*(i/2)+1)
	}
	waitFor(t, func() bool { return conns[0].readPaused.Load() || conns[1].readPaused.Load() }, "a reader to wait for the shared budget")
	if u := b.Used(); u > 1<<20+210<<10 {
		t.Errorf("the shared budget holds %d bytes, over %d", u, 1<<20)
	}
	conns[0].Close()
	waitFor(t, func() bool { return b.Used() <= conns[1].mem.own.Used() }, "the closed connection to give its share back")
}

// A silent peer is dropped once the keep-alive timeout has passed, not
// before and not long after; pending calls then fail with Unavailable.
func TestKeepAliveTimeoutIsKept(t *testing.T) {
	nc, err := net.Dial("tcp", silentPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	const interval, timeout = 40 * time.Millisecond, 80 * time.Millisecond
	start := time.Now()
	c, err := Client(nc, Config{KeepAlive: interval, KeepAliveTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Call(context.Background(), out("echo", nil, nil))
	took := time.Since(start)
	if status.CodeOf(err) != status.Unavailable || !errors.Is(err, status.ErrTimeout) {
		t.Fatalf("pending call on a silent peer: %v", err)
	}
	if took < timeout {
		t.Fatalf("dropped after %v, before the timeout of %v", took, timeout)
	}
	// The documented slack is a quarter interval; scheduling gets more.
	if took > timeout+interval/4+500*time.Millisecond {
		t.Fatalf("dropped after %v, long after the timeout of %v", took, timeout)
	}
	if !strings.Contains(err.Error(), "limit 80ms") {
		t.Errorf("the error does not name the limit: %v", err)
	}
}

// A client whose peer answers with TLS bytes is told to use tls://.
func TestHandshakeNamesTLS(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		nc.Write([]byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46}) // a TLS alert
		io.Copy(io.Discard, nc)
		nc.Close()
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Client(nc, Config{})
	if err == nil || !strings.Contains(err.Error(), "tls://") || !errors.Is(err, status.ErrTLS) {
		t.Fatalf("got %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An account's held word: what was added before the close is given back
// to the shared budget once, what comes after is refused and changes
// nothing, however the adds and the close race.
func TestMemAccountCloseRaces(t *testing.T) {
	for round := range 200 {
		shared := NewBudget(1 << 40)
		m := &memAccount{own: NewBudget(1 << 40), shared: shared}
		var wg sync.WaitGroup
		var kept atomic.Int64 // what the adders' successful adds hold
		for range 4 {
			wg.Go(func() {
				for i := range 100 {
					n := int64(i%7 + 1)
					shared.tryTake(n, true)
					if m.addHeld(n) {
						kept.Add(n)
						if i%3 == 0 && m.addHeld(-n) { // an unreserve
							kept.Add(-n)
							shared.give(n)
						}
					} else {
						shared.give(n) // refused: the caller gives its bytes back itself
					}
				}
			})
		}
		wg.Go(m.closeAccount)
		wg.Wait()
		m.closeAccount() // a second close gives nothing
		if m.addHeld(5) {
			t.Fatalf("round %d: an add after the close was taken", round)
		}
		// Everything held was given back at the close; unreserves after
		// it were refused, and their bytes went with the close too.
		if u := shared.Used(); u != 0 {
			t.Fatalf("round %d: the shared budget holds %d bytes after the close (adders kept %d)", round, u, kept.Load())
		}
	}
}
