package conn

import (
	"testing"

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
