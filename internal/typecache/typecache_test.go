package typecache

import (
	"reflect"
	"sync"
	"testing"
)

// More types than slots, so that many share one: each still gets its
// own value, made once.
func TestGetKeepsOneValuePerType(t *testing.T) {
	var c Cache[int]
	var types []reflect.Type
	for i := range 3 << bits {
		types = append(types, reflect.ArrayOf(i, reflect.TypeFor[byte]()))
	}
	made := map[reflect.Type]int{}
	mk := func(t reflect.Type) int { made[t]++; return t.Len() }
	for round := range 3 {
		for _, typ := range types {
			if got := c.Get(typ, mk); got != typ.Len() {
				t.Fatalf("round %d: Get(%v) = %d, want %d", round, typ, got, typ.Len())
			}
		}
	}
	for typ, n := range made {
		if n != 1 {
			t.Errorf("the value of %v was made %d times, want once", typ, n)
		}
	}
}

func TestGetConcurrent(t *testing.T) {
	var c Cache[reflect.Type]
	types := []reflect.Type{reflect.TypeFor[int](), reflect.TypeFor[string](), reflect.TypeFor[[]byte](), reflect.TypeFor[struct{ A int }]()}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10000 {
				typ := types[(g+i)%len(types)]
				if got := c.Get(typ, func(t reflect.Type) reflect.Type { return t }); got != typ {
					t.Errorf("Get(%v) = %v", typ, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestGetHitDoesNotAllocate(t *testing.T) {
	var c Cache[any]
	typ := reflect.TypeFor[int]()
	mk := func(reflect.Type) any { return new(int) }
	want := c.Get(typ, mk)
	if n := testing.AllocsPerRun(1000, func() {
		if c.Get(typ, mk) != want {
			t.Fatal("a hit returned another value")
		}
	}); n != 0 && !raceEnabled {
		t.Errorf("a hit allocates %.1f times", n)
	}
}

func BenchmarkGet(b *testing.B) {
	var c Cache[any]
	typ := reflect.TypeFor[[]byte]()
	mk := func(reflect.Type) any { return new(int) }
	for b.Loop() {
		c.Get(typ, mk)
	}
}

func BenchmarkSyncMap(b *testing.B) {
	var m sync.Map
	typ := reflect.TypeFor[[]byte]()
	m.Store(typ, new(int))
	for b.Loop() {
		m.Load(typ)
	}
}
