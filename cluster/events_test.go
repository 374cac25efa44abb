package cluster

import (
	"fmt"
	"testing"
	"time"
)

func TestSubscriberDropsOldestAndCounts(t *testing.T) {
	s := newSubscriber(4)
	defer s.close()
	ev := func(i int) Event { return Event{Kind: EventUpdated, Member: Member{Name: fmt.Sprintf("m%02d", i)}} }
	s.push(ev(0))
	// Wait until the delivery goroutine holds event 0 (the ring is empty).
	waitFor(t, time.Second, func() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.n == 0 },
		func() string { return "delivery goroutine did not take the first event" })
	for i := 1; i < 10; i++ {
		s.push(ev(i)) // never blocks, though nobody reads
	}
	want := []struct {
		name   string
		missed uint64
	}{{"m00", 0}, {"m06", 5}, {"m07", 0}, {"m08", 0}, {"m09", 0}}
	for _, w := range want {
		got := recv(t, (<-chan Event)(s.out))
		if got.Member.Name != w.name || got.Missed != w.missed {
			t.Fatalf("read %v (missed %d), want %s (missed %d)", got, got.Missed, w.name, w.missed)
		}
	}
	// A ring of one keeps only the newest.
	s1 := newSubscriber(1)
	defer s1.close()
	s1.push(ev(0))
	waitFor(t, time.Second, func() bool { s1.mu.Lock(); defer s1.mu.Unlock(); return s1.n == 0 },
		func() string { return "delivery goroutine did not take the first event" })
	s1.push(ev(1))
	s1.push(ev(2))
	s1.push(ev(3))
	if a, b := recv(t, (<-chan Event)(s1.out)), recv(t, (<-chan Event)(s1.out)); a.Member.Name != "m00" || b.Member.Name != "m03" || b.Missed != 2 {
		t.Fatalf("ring of one delivered %v then %v (missed %d)", a, b, b.Missed)
	}
}

func TestSubscriberCloseWhileBlocked(t *testing.T) {
	s := newSubscriber(2)
	s.push(Event{Kind: EventJoined})
	s.push(Event{Kind: EventJoined})
	s.close() // the delivery goroutine is blocked sending; close must not hang
	if _, ok := <-s.out; ok {
		t.Fatal("channel still open after close")
	}
	s.push(Event{Kind: EventJoined}) // pushing after close is harmless
	s.close()
}
