package conn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// Small and medium calls (copied into the write buffer: the callers'
// own, non-blocking writes) from a few goroutines at once, through a
// peer that reads slowly in small chunks: every CALL the peer parses is
// whole, in id order, holds the bytes sent, every CANCEL names a call
// already received, and every call sent arrives.
func TestTryWriteStress(t *testing.T) {
	for _, sp := range stuckPeers {
		for _, mode := range []struct {
			callers int
			answer  bool
		}{{1, false}, {1, true}, {3, true}} {
			t.Run(fmt.Sprint(sp.name, mode.callers, mode.answer), func(t *testing.T) {
				testTryWriteStress(t, sp.peer, mode.callers, mode.answer)
			})
		}
	}
}

func testTryWriteStress(t *testing.T, stuckPeer func(*testing.T, Config) (*Conn, net.Conn), callers int, answer bool) {
	cc, pc := stuckPeer(t, Config{})
	socketOf(cc.nc).SetWriteBuffer(4 << 10)
	socketOf(pc).SetReadBuffer(4 << 10)
	const per = 16
	var sentMu sync.Mutex
	sent := map[uint64]int{} // function index -> size, by call
	sizes := func(g, k int) int { return []int{1, 200, 3000, 9000, 20000, 40}[(g*7+k)%6] + k }
	var wg sync.WaitGroup
	var nsent atomic.Int64
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range per {
				args := make([]byte, sizes(g, k))
				fill(args, g*1000+k)
				o := &Outgoing{Function: fmt.Sprintf("f%d-%d", g, k), Args: args}
				dl := time.Duration(1+(g*13+k*7)%15) * time.Millisecond
				if answer && k%3 != 0 {
					dl = 10 * time.Second
				}
				ctx, cancel := context.WithTimeout(context.Background(), dl)
				cc.Call(ctx, o)
				cancel()
				if o.Sent {
					sentMu.Lock()
					sent[uint64(g*1000+k)] = len(args)
					sentMu.Unlock()
					nsent.Add(1)
				}
				fill(args, 99) // the caller's again
			}
		}()
	}
	errc := make(chan error, 1)
	got := map[uint64]bool{}
	var ansMu sync.Mutex
	go func() {
		r := wire.NewReader(slowReader{pc, 1500, 200 * time.Microsecond}, 64<<10, 64<<20)
		calls := map[uint64]bool{}
		var last uint64
		for {
			pc.SetReadDeadline(time.Now().Add(2 * time.Second)) // idle that long: everything sent has arrived
			h, p, err := r.Next()
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				errc <- nil
				return
			}
			if err != nil {
				errc <- fmt.Errorf("peer read after %d calls: %v", len(got), err)
				return
			}
			switch h.Type {
			case wire.TypeCall:
				c, err := wire.ParseCall(h.Flags, p)
				if err != nil {
					errc <- fmt.Errorf("call %d: %v", h.ID, err)
					return
				}
				if h.ID <= last {
					errc <- fmt.Errorf("call id %d after %d", h.ID, last)
					return
				}
				last = h.ID
				calls[h.ID] = true
				var g, k int
				fmt.Sscanf(string(c.Function), "f%d-%d", &g, &k)
				w := make([]byte, sizes(g, k))
				fill(w, g*1000+k)
				if string(c.Args) != string(w) {
					errc <- fmt.Errorf("call %s: %d bytes of args, want %d, or other bytes", c.Function, len(c.Args), len(w))
					return
				}
				if got[uint64(g*1000+k)] {
					errc <- fmt.Errorf("call %s twice", c.Function)
					return
				}
				got[uint64(g*1000+k)] = true
				if answer {
					ansMu.Lock()
					pc.Write(wire.AppendResult(nil, h.ID, []byte("ok"), nil, nil))
					ansMu.Unlock()
				}
			case wire.TypeCancel:
				if !calls[h.ID] {
					errc <- fmt.Errorf("CANCEL of call %d before its CALL", h.ID)
					return
				}
			}
		}
	}()
	wg.Wait()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sentMu.Lock()
	defer sentMu.Unlock()
	for f := range sent {
		if !got[f] {
			t.Errorf("call f%d-%d sent, never received", f/1000, f%1000)
		}
	}
	t.Logf("%d sent, %d received", len(sent), len(got))
}

// A result the socket took only part of (a peer that does not read) still
// counts against the memory budget while its rest waits for the writer
// goroutine: a result counts until it is written to the socket.
func TestShortWriteKeepsTheResultsBudget(t *testing.T) {
	addr, ready := serveOne(t, Config{Handler: HandlerFunc(echo)})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { setRcvBuf(fd, 4<<10) })
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 8 << 20, KeepAlive: time.Hour})); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(nc, make([]byte, len(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1, KeepAlive: 1})))); err != nil {
		t.Fatal(err)
	}
	sc := <-ready
	if sc == nil {
		t.Fatal("server set-up failed")
	}
	t.Cleanup(func() { sc.Close() })
	sc.nc.(*net.TCPConn).SetWriteBuffer(4 << 10)
	const size = 60000 // copied into the write buffer, not queued by reference
	b, at := wire.AppendCall(nil, &wire.CallFrame{ID: 1, Function: "echo"})
	b = append(b, make([]byte, size)...)
	wire.EndFrame(b, at)
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		sc.wmu.Lock()
		defer sc.wmu.Unlock()
		return sc.writing // a writer is stuck with the rest
	}, "the server's writer to be stuck")
	time.Sleep(50 * time.Millisecond)
	if u := sc.mem.own.Used(); u == 0 {
		t.Fatalf("the budget holds %d bytes while the rest of a %d-byte result waits to be written", u, size)
	}
	go io.Copy(io.Discard, nc) // the peer reads: the result goes, and its budget with it
	waitFor(t, func() bool { return sc.mem.own.Used() == 0 }, "the budget to be empty once the result is written")
}

// holdingConn is a TCP socket whose TryWriter takes everything but holds
// its last bytes back until the next Write, as TLS does over a full
// socket (transport's TestTLSTryWriteNeverWaits makes it happen for real;
// here, where a socket full to just the right byte is hard to arrange,
// the connection layer's side of it is tested).
type holdingConn struct {
	net.Conn
	mu   sync.Mutex
	held []byte
}

func (h *holdingConn) TryWrite(b []byte) (int, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) > 0 {
		return 0, false, nil
	}
	k := min(len(b), 10)
	if _, err := h.Conn.Write(b[:len(b)-k]); err != nil {
		return 0, false, err
	}
	h.held = append(h.held, b[len(b)-k:]...)
	return len(b), true, nil
}

func (h *holdingConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.held) > 0 {
		if _, err := h.Conn.Write(h.held); err != nil {
			return 0, err
		}
		h.held = nil
	}
	return h.Conn.Write(b)
}

// A caller's frame that the transport took but partly held back (TLS's
// last record, the socket full) still reaches the peer with nothing else
// to write after it: the writer goroutine writes (a PAD frame), which
// sends the held bytes. Every call here is answered.
func TestHeldBytesGoWithoutAnotherFrame(t *testing.T) {
	addr, ready := serveOne(t, Config{Handler: HandlerFunc(echo)})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	hc := &holdingConn{Conn: nc}
	cc, err := Client(hc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	sc := <-ready
	if sc == nil {
		t.Fatal("server set-up failed")
	}
	defer sc.Close()
	for i := range 5 {
		args := bytes.Repeat([]byte{byte(i)}, 100+i*1000)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := cc.Call(ctx, out("echo", nil, args))
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v (its frame's last bytes never left?)", i, err)
		}
		if !bytes.Equal(res.Result(), args) {
			t.Fatalf("call %d: %d bytes back, want the %d sent", i, len(res.Result()), len(args))
		}
		res.Release()
	}
}
