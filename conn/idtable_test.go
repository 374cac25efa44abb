package conn

import (
	"math/rand/v2"
	"testing"
)

// The table against a map: calls put with rising ids (this side's step
// of two), answered out of order, some far later than others (they keep
// their slot while the ring wraps and later ids overflow to the map).
func TestIDTableMatchesAMap(t *testing.T) {
	var tab idTable[call]
	want := map[uint64]*call{}
	rng := rand.New(rand.NewPCG(1, 2))
	id := uint64(1)
	var live []uint64
	for step := range 200000 {
		if len(live) < 600 && (len(live) == 0 || rng.IntN(2) == 0) {
			cl := &call{}
			tab.put(id, cl)
			want[id] = cl
			live = append(live, id)
			id += 2
		} else {
			// Mostly recent calls are answered; the oldest few wait long.
			i := rng.IntN(len(live))
			if i < 3 && rng.IntN(100) != 0 {
				i = len(live) - 1
			}
			got := live[i]
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			if tab.get(got) != want[got] {
				t.Fatalf("step %d: call %d not waiting", step, got)
			}
			if cl := tab.take(got); cl != want[got] {
				t.Fatalf("step %d: take(%d) = %p, want %p", step, got, cl, want[got])
			}
			delete(want, got)
			if tab.get(got) != nil || tab.take(got) != nil {
				t.Fatalf("step %d: call %d still there after take", step, got)
			}
		}
		if tab.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, tab.len(), len(want))
		}
	}
	seen := 0
	tab.each(func(*call) { seen++ })
	if seen != len(want) {
		t.Fatalf("each saw %d entries, want %d", seen, len(want))
	}
	if tab.ring == nil || len(tab.over) == 0 {
		t.Fatal("no call overflowed the ring: the test did not wrap it")
	}
	refused := tab.takeAbove(id - 200)
	for _, cl := range refused {
		found := false
		for k, v := range want {
			if v == cl && k > id-200 {
				delete(want, k)
				found = true
			}
		}
		if !found {
			t.Fatal("takeAbove returned a call at or below its bound")
		}
	}
	for k := range want {
		if k > id-200 {
			t.Fatalf("takeAbove left call %d", k)
		}
	}
	rest := tab.takeAll()
	if len(rest) != len(want) {
		t.Fatalf("takeAll returned %d calls, want %d", len(rest), len(want))
	}
	if tab.takeAll() != nil || tab.get(1) != nil || tab.len() != 0 {
		t.Fatal("the table is not empty after takeAll")
	}
}

// A connection with few calls keeps them in a map: thousands of idle
// connections that each made one call do not hold a ring each.
func TestIDTableRingOnlyForBusyConnections(t *testing.T) {
	var tab idTable[call]
	for i := range ringAfter - 1 {
		id := uint64(2*i + 1)
		tab.put(id, &call{})
		if tab.take(id) == nil {
			t.Fatalf("call %d lost", id)
		}
	}
	if tab.ring != nil {
		t.Fatalf("a ring after %d calls", ringAfter-1)
	}
	tab.put(1<<20+1, &call{})
	if tab.ring == nil {
		t.Fatalf("no ring after %d calls", ringAfter)
	}
	if tab.take(1<<20+1) == nil || tab.len() != 0 {
		t.Fatal("the call that made the ring is lost")
	}
}
