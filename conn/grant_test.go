package conn

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// A large call's budget is reserved once its first part has arrived, so
// its buffer is allocated whole (wire.Reader.SetGrant), and only once: the
// bytes come back when its answer is written.
func TestGrantedCallReservesOnce(t *testing.T) {
	const size = 3 << 20
	addr, ready := serveOne(t, Config{MaxFrame: 4 << 20, MaxMemory: 8 << 20, Handler: HandlerFunc(echo)})
	nc := hostilePeer(t, addr)
	sc := <-ready
	if sc == nil {
		t.Fatal("server set-up failed")
	}
	t.Cleanup(func() { sc.Close() })
	frame, at := wire.AppendCall(nil, &wire.CallFrame{ID: 1, Function: "echo"})
	frame = append(frame, make([]byte, size)...)
	wire.EndFrame(frame, at)
	if _, err := nc.Write(frame[:200<<10]); err != nil {
		t.Fatal(err)
	}
	payload := len(frame) - wire.HeaderSize
	waitFor(t, func() bool { return sc.mem.own.Used() == int64(payload) }, "the call's budget reserved while it arrives")
	if _, err := nc.Write(frame[200<<10:]); err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(nc, 64<<10, 8<<20)
	h, p, err := r.Next()
	if err != nil || h.Type != wire.TypeResult || h.ID != 1 || len(p) != size {
		t.Fatalf("answer: %v %d bytes %v", h, len(p), err)
	}
	waitFor(t, func() bool { return sc.mem.own.Used() == 0 }, "the budget back to zero")
}

// An early reservation leaves half of a budget to the requests that have
// arrived: a request on its way does not crowd them out.
func TestBudgetTryTakeHalf(t *testing.T) {
	b := NewBudget(8 << 20)
	if !b.tryTakeHalf(3 << 20) {
		t.Fatal("3 MiB of an empty 8 MiB budget refused")
	}
	if b.tryTakeHalf(2 << 20) {
		t.Fatal("5 MiB of 8 taken early: more than half")
	}
	if !b.tryTakeHalf(1 << 20) {
		t.Fatal("4 MiB of 8 refused: exactly half")
	}
	if b.Used() != 4<<20 {
		t.Fatalf("used %d, want 4 MiB", b.Used())
	}
}

// Peers that announce large calls, send their first part and stall hold
// at most half of the server's budget between them (the early
// reservations of grantFrame), so a good client's calls still get through.
func TestStalledLargeCallsLeaveHalfTheBudget(t *testing.T) {
	const limit = 32 << 20
	shared := NewBudget(limit)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var served []*Conn
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			c, err := Server(nc, Config{Budget: shared, Handler: HandlerFunc(echo)})
			if err == nil {
				mu.Lock()
				served = append(served, c)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range served {
			c.Close()
		}
	})
	frame, at := wire.AppendCall(nil, &wire.CallFrame{ID: 1, Function: "echo"})
	frame = append(frame, make([]byte, 4<<20-100)...)
	wire.EndFrame(frame, at)
	for range 20 { // 80 MiB announced: 2.5 times the budget
		nc := hostilePeer(t, l.Addr().String())
		if _, err := nc.Write(frame[:100<<10]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return shared.Used() >= limit/2-4<<20 }, "the stalled calls' early reservations")
	time.Sleep(50 * time.Millisecond)
	if u := shared.Used(); u > limit/2 {
		t.Fatalf("stalled calls hold %d bytes of a %d-byte budget, over half", u, limit)
	}
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := Client(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 10 {
		rep, err := c.Call(ctx, &Outgoing{Function: "echo", Args: make([]byte, 1<<20)})
		if err != nil {
			t.Fatalf("a good client's call with stalled peers holding half the budget: %v", err)
		}
		rep.Release()
	}
}

// A large answer to a call this side waits for is granted too, against
// the client's own budget, and the bytes come back once it is read: the
// caller owns the answer then.
func TestGrantedAnswerGivesBudgetBack(t *testing.T) {
	p := newPair(t, Config{MaxFrame: 4 << 20}, Config{MaxFrame: 4 << 20})
	args := make([]byte, 3<<20)
	for range 3 {
		r, err := p.client.Call(context.Background(), out("echo", nil, args))
		if err != nil || len(r.Result()) != len(args) {
			t.Fatalf("echo: %v", err)
		}
		r.Release()
		if u := p.client.mem.own.Used(); u != 0 {
			t.Fatalf("the client's budget holds %d bytes after the answer was read", u)
		}
	}
}
