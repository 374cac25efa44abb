package conn

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// rawPeer is a server that sends its HELLO, answers nothing, and hands
// every frame it reads to fn (which may write to nc). It returns a
// client Conn on it.
func rawPeer(t *testing.T, fn func(nc net.Conn, h wire.Header, p []byte)) *Conn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var mu sync.Mutex
	var snc net.Conn
	go func() {
		defer wg.Done()
		nc, err := l.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		snc = nc
		mu.Unlock()
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Hour}))
		r := wire.NewReader(nc, 64<<10, 1<<20)
		for {
			h, p, err := r.Next()
			if err != nil {
				return
			}
			fn(nc, h, p)
		}
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Client(nc, Config{KeepAlive: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		l.Close()
		mu.Lock()
		if snc != nil {
			snc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return c
}

// A call cancelled after Retire (a refusal beat the peer's GOAWAY, so
// no GOAWAY is in yet) and then shown never served by that GOAWAY still
// runs its Unserved: Retire is not the peer's GOAWAY, and the calls
// still waiting then are not known to be served.
func TestCancelledAfterRetireThenRefusedRunsUnserved(t *testing.T) {
	for _, kind := range []string{"call", "promise", "stream"} {
		t.Run(kind, func(t *testing.T) {
			called := make(chan struct{}, 1)
			c := rawPeer(t, func(nc net.Conn, h wire.Header, _ []byte) {
				switch h.Type {
				case wire.TypeCall:
					called <- struct{}{}
				case wire.TypeCancel:
					nc.Write(wire.AppendGoAway(nil, wire.GoAway{LastID: 0, Code: uint32(status.Unavailable), Message: []byte("test: going away")}))
				}
			})
			var ran atomic.Int32
			o := &Outgoing{Function: "take", Unserved: func() { ran.Add(1) }}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cctx, ccancel := context.WithCancel(ctx)
			defer ccancel()
			sendThenCancel(t, c, kind, cctx, ccancel, o, called, c.Retire) // what the client does when a refusal beats the GOAWAY
			deadline := time.Now().Add(2 * time.Second)
			for ran.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			if n := ran.Load(); n != 1 {
				t.Fatalf("Unserved ran %d times for a %s cancelled after Retire and then refused by the GOAWAY (LastID 0), want 1", n, kind)
			}
		})
	}
}

// A peer that never answers and never sends GOAWAY while this side
// cancels many calls that have an Unserved cannot grow the abandoned
// table without bound.
func TestAbandonedBounded(t *testing.T) {
	c := rawPeer(t, func(net.Conn, wire.Header, []byte) {})
	ctx := context.Background()
	var ran atomic.Int32
	n := 3*maxAbandoned + 10
	for i := 0; i < n; i++ {
		a, err := c.Go(ctx, &Outgoing{Function: "take", Unserved: func() { ran.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		a.Cancel()
	}
	c.cmu.Lock()
	held := len(c.abandoned)
	c.cmu.Unlock()
	if held > maxAbandoned {
		t.Fatalf("%d cancelled calls kept for a GOAWAY that never comes, want at most %d", held, maxAbandoned)
	}
	if ran.Load() != 0 {
		t.Fatalf("Unserved ran %d times with no GOAWAY", ran.Load())
	}
}

// The RESULT of a call this side cancelled meanwhile (the answer crossed
// the CANCEL) still passed references to the peer's exports: the peer
// counted one for each, and nobody here will take them, so they are
// released at once (RELEASE frames), for a call, a promise or a stream.
func TestAnswerAfterCancelReleasesResultCaps(t *testing.T) {
	for _, kind := range []string{"call", "promise", "stream"} {
		t.Run(kind, func(t *testing.T) {
			called := make(chan struct{}, 1)
			released := make(chan uint64, 4)
			c := rawPeer(t, func(nc net.Conn, h wire.Header, p []byte) {
				switch h.Type {
				case wire.TypeCall:
					called <- struct{}{}
				case wire.TypeCancel:
					// The handler had returned a capability (export 7)
					// before the CANCEL came.
					nc.Write(wire.AppendResult(nil, h.ID, []byte{0xc0}, nil, []wire.CapDescriptor{{Kind: wire.CapSenderHosted, ID: 7}}))
				case wire.TypeRelease:
					if h.Flags&wire.FlagCapability != 0 {
						if n, err := wire.ParseRelease(p); err == nil && n == 1 {
							released <- h.ID
						}
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cctx, ccancel := context.WithCancel(ctx)
			defer ccancel()
			o := &Outgoing{Function: "make"}
			sendThenCancel(t, c, kind, cctx, ccancel, o, called, nil)
			select {
			case id := <-released:
				if id != 7 {
					t.Fatalf("released export %d, want 7", id)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("the peer's export in the RESULT of the cancelled %s was never released", kind)
			}
		})
	}
}

// sendThenCancel makes a call of kind (call, promise or stream) on c,
// waits until the peer has it (called), runs between (nil: nothing), and
// cancels it, returning once it has ended.
func sendThenCancel(t *testing.T, c *Conn, kind string, cctx context.Context, ccancel context.CancelFunc, o *Outgoing, called <-chan struct{}, between func()) {
	t.Helper()
	if between == nil {
		between = func() {}
	}
	switch kind {
	case "call":
		errc := make(chan error, 1)
		go func() { _, err := c.Call(cctx, o); errc <- err }()
		<-called
		between()
		ccancel()
		if err := <-errc; status.CodeOf(err) != status.Canceled {
			t.Fatalf("cancelled call: %v", err)
		}
	case "promise":
		a, err := c.Go(cctx, o)
		if err != nil {
			t.Fatal(err)
		}
		<-called
		between()
		a.Cancel()
	case "stream":
		s, err := c.OpenStream(cctx, o)
		if err != nil {
			t.Fatal(err)
		}
		<-called
		between()
		ccancel()
		<-s.done
	default:
		t.Fatalf("unknown kind %q", kind)
	}
}
