package conn

import (
	"context"
	"strings"
	"testing"
	"time"
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
