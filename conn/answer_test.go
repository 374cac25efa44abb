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
	time.Sleep(10 * time.Millisecond) // let it look the answer up first (either order must end)
	c.release(7)
	select {
	case err := <-got:
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
