package conn

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// An answer dropped while its call still runs fails whoever waits for
// it: settle finds nothing to complete afterwards, so without that a
// waiter that held the answer would wait until its context ends.
func TestDroppedPendingAnswerFailsItsWaiters(t *testing.T) {
	c := &Conn{answers: map[uint64]*answer{}}
	c.cfg.MaxRetained = 4
	c.cfg.MaxRetainedBytes = 1 << 20
	c.smu.Lock()
	if err := c.retainLocked(7, 1); err != nil {
		t.Fatal(err)
	}
	c.smu.Unlock()
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _, err := c.Answer(ctx, 7)
		got <- err
	}()
	a := c.answers[7] // what a waiter that looked it up holds
	c.release(7)
	select {
	case <-a.done:
	default:
		t.Fatal("an answer dropped while pending is not done")
	}
	if a.err == nil || !strings.Contains(a.err.Error(), "released before it came") {
		t.Fatalf("a dropped pending answer's error: %v", a.err)
	}
	select {
	case err := <-got: // either order: it looked the answer up first, or found none
		if err == nil || !strings.Contains(err.Error(), "released") {
			t.Fatalf("waiting for a dropped answer: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a waiter for a dropped answer still waits")
	}
	c.settle(7, []byte{1}, nil, nil) // the call ends later: nothing to complete, no panic
	if len(c.answers) != 0 || c.retainedBytes != 0 {
		t.Fatalf("after settling a dropped answer: %d answers, %d bytes", len(c.answers), c.retainedBytes)
	}
}

// Only the answers a call actually pinned are unpinned: a peer naming a
// call that comes later cannot take a pin from that call's answer.
func TestPinsOnlyExistingAnswers(t *testing.T) {
	c := &Conn{answers: map[uint64]*answer{}}
	c.cfg.MaxRetained = 4
	c.smu.Lock()
	defer c.smu.Unlock()
	if err := c.retainLocked(3, 1); err != nil {
		t.Fatal(err)
	}
	pinned := c.pinLocked([]uint64{3, 9}) // 9: a later call, not admitted yet
	if len(pinned) != 1 || pinned[0] != 3 {
		t.Fatalf("pinned %v, want [3]", pinned)
	}
	if err := c.retainLocked(9, 1); err != nil {
		t.Fatal(err)
	}
	c.unpinLocked(pinned)
	if p3, p9 := c.answers[3].pins, c.answers[9].pins; p3 != 0 || p9 != 0 {
		t.Fatalf("after unpinning: answer 3 has %d pins, answer 9 %d; want 0 and 0", p3, p9)
	}
}

// The capability table of an answer stays valid until Release (Reply) or
// for good (Async): the paths of promised capabilities in it are copied,
// not left pointing into the read buffer, which the next frames reuse.
func TestAnswerCapPathsOutliveTheReadBuffer(t *testing.T) {
	path := wire.AppendPath(nil, []wire.PathSegment{{Key: "field"}, {Index: 3, IsIndex: true}})
	cc, _ := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		if string(in.Function) == "promised" {
			in.ResultCaps = []wire.CapDescriptor{{Kind: wire.CapReceiverAnswer, ID: 2, Path: path}}
		}
		return append(out, in.Args...), nil
	})
	r, err := cc.Call(context.Background(), out("promised", nil, []byte("r")))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	a, err := cc.Go(context.Background(), out("promised", nil, []byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	<-a.Done()
	for range 4 { // frames that land where the answers were read
		got, err := callString(t, cc, context.Background(), "echo", strings.Repeat("\xff", 40))
		if err != nil || len(got) != 40 {
			t.Fatalf("echo: %v", err)
		}
	}
	for name, caps := range map[string][]wire.CapDescriptor{"Reply": r.Caps(), "Async": a.Caps()} {
		if len(caps) != 1 || string(caps[0].Path) != string(path) {
			t.Errorf("%s caps: %+v, want path %x", name, caps, path)
		}
	}
}

// bigPath is a distinct encoded path of about 60 KiB (the longest a path
// may be is 64 keys of 1 KiB).
func bigPath(i int) []byte {
	segs := []wire.PathSegment{{Index: i, IsIndex: true}}
	for range 60 {
		segs = append(segs, wire.PathSegment{Key: strings.Repeat("k", 1000)})
	}
	return wire.AppendPath(nil, segs)
}

// Calls on capabilities in answers that do not exist (never retained,
// refused, released) cannot be served, and leave no ticket behind: such
// tickets were never forgotten, since no answer's release drops them, so
// a peer made the connection hold every path it named (up to 100000 of
// 60 KiB) for as long as it lived.
func TestCallOnUnknownAnswerLeavesNoTicket(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	var err error
	for i := range 20 {
		o := out("m", nil, nil)
		o.Target = &wire.Target{Kind: wire.TargetAnswer, ID: 1001 + 2*uint64(i), Path: bigPath(i)}
		_, err = p.client.Call(context.Background(), o)
	}
	if n := p.server.Targets(); n != 0 {
		t.Fatalf("%d targets ticketed for answers that do not exist", n)
	}
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "unknown, not retained, or released") {
		t.Fatalf("call on an unknown answer: %v", err)
	}
}

// The paths of the targets ticketed in a retained answer count towards
// MaxRetainedBytes: they stay until the answer is released.
func TestTargetPathsInAnAnswerAreBounded(t *testing.T) {
	p := newPair(t, Config{MaxRetainedBytes: 1 << 20}, Config{})
	a, err := p.client.Go(context.Background(), &Outgoing{Function: "echo", Args: []byte("x"), Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	<-a.Done()
	refused := 0
	for i := range 40 { // 2.4 MB of paths
		o := out("m", nil, nil)
		o.Target = &wire.Target{Kind: wire.TargetAnswer, ID: a.ID(), Path: bigPath(i)}
		_, err := p.client.Call(context.Background(), o)
		if status.CodeOf(err) == status.ResourceExhausted {
			refused++
			if !strings.Contains(err.Error(), "retained") {
				t.Fatalf("refusal does not say why: %v", err)
			}
		}
	}
	if refused == 0 || p.server.Targets() > 20 {
		t.Fatalf("%d calls refused, %d targets of 60 KiB held: MaxRetainedBytes is 1 MiB", refused, p.server.Targets())
	}
}

// A RetainBudget bounds the retained answers of many connections
// together: MaxRetainedBytes alone bounds each connection, so peers with
// many connections made a server hold any number of times it. An answer
// over the shared budget is kept as a ResourceExhausted error; a release
// or a closed connection gives its bytes back.
func TestRetainBudgetBoundsAllConnections(t *testing.T) {
	rb := NewBudget(2500)
	echo := func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		return append(out, in.Args...), nil
	}
	c1, s1 := streamPair(t, Config{RetainBudget: rb}, Config{}, echo)
	c2, s2 := streamPair(t, Config{RetainBudget: rb}, Config{}, echo)
	ctx := context.Background()
	payload := make([]byte, 1000)
	retain := func(cc *Conn) *Async {
		a, err := cc.Go(ctx, &Outgoing{Function: "echo", Args: payload, Retain: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Result(); err != nil { // the caller gets its result either way
			t.Fatal(err)
		}
		return a
	}
	a1, a2 := retain(c1), retain(c1)
	b1 := retain(c2)
	if _, _, err := s2.Answer(ctx, b1.ID()); status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "all connections") {
		t.Fatalf("an answer over the shared budget: %v, want ResourceExhausted naming all connections", err)
	}
	if _, _, err := s1.Answer(ctx, a2.ID()); err != nil {
		t.Fatalf("an answer within it: %v", err)
	}
	a1.Release()
	waitFor(t, func() bool { return rb.Used() < 2000 }, "the released answer's bytes back")
	b2 := retain(c2)
	if _, _, err := s2.Answer(ctx, b2.ID()); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	c1.Close()
	waitFor(t, func() bool { return rb.Used() < 2000 }, "the closed connection's answers' bytes back")
	b1.Release()
	b2.Release()
	waitFor(t, func() bool { return rb.Used() == 0 }, "every byte back")
}
