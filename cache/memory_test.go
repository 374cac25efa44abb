package cache

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
)

func TestMemoryHitMissStats(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(1 << 20)
	defer m.Close()
	if v, ok, err := m.Get(ctx, key(1)); v != nil || ok || err != nil {
		t.Fatalf("empty cache: Get = %v, %v, %v; want a miss", v, ok, err)
	}
	if err := m.Put(ctx, key(1), []byte("one")); err != nil {
		t.Fatal(err)
	}
	v, ok, err := m.Get(ctx, key(1))
	if err != nil || !ok || string(v) != "one" {
		t.Fatalf("Get = %q, %v, %v; want one", v, ok, err)
	}
	if err := m.Put(ctx, key(1), []byte("uno")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := m.Get(ctx, key(1)); string(v) != "uno" {
		t.Fatalf("after replace Get = %q, want uno", v)
	}
	m.c.CleanUp()
	s := m.Stats()
	want := Stats{Hits: 2, Misses: 1, Puts: 2, Entries: 1, Bytes: 32 + 3 + memEntryOverhead, MaxBytes: 1 << 20}
	if s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
}

func TestMemoryDefaultBound(t *testing.T) {
	m := NewMemory(0)
	defer m.Close()
	if got := m.Stats().MaxBytes; got != DefaultMemoryBytes {
		t.Fatalf("MaxBytes = %d, want %d", got, DefaultMemoryBytes)
	}
}

func TestMemoryByteBound(t *testing.T) {
	ctx := context.Background()
	const bound = 64 << 10
	m := NewMemory(bound)
	defer m.Close()
	const n, size = 1000, 1024
	for i := range n {
		if err := m.Put(ctx, key(i), value(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	m.c.CleanUp()
	s := m.Stats()
	if s.Bytes > bound {
		t.Fatalf("Bytes = %d, over the bound %d", s.Bytes, bound)
	}
	var found, foundBytes int64
	for i := range n {
		v, ok, _ := m.Get(ctx, key(i))
		if ok {
			found++
			foundBytes += int64(len(v)) + 32 + memEntryOverhead
			if !bytes.Equal(v, value(i, size)) {
				t.Fatalf("key %d: wrong value", i)
			}
		}
	}
	if foundBytes > bound {
		t.Fatalf("%d entries of %d bytes in all are held, over the bound %d", found, foundBytes, bound)
	}
	if found == 0 || s.Evictions == 0 || s.Entries != found {
		t.Fatalf("found %d entries; Stats = %+v: want some kept, some evicted", found, s)
	}
	if s.Evictions+s.Entries != n {
		t.Fatalf("Evictions %d + Entries %d != %d puts", s.Evictions, s.Entries, n)
	}
}

func TestMemoryOversized(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(1024)
	defer m.Close()
	_ = m.Put(ctx, key(1), []byte("small"))
	if err := m.Put(ctx, key(1), make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m.Get(ctx, key(1)); ok {
		t.Fatal("a value heavier than the bound was kept, or the older one was")
	}
}

func TestMemoryClosed(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(1024)
	_ = m.Put(ctx, key(1), []byte("x"))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := m.Get(ctx, key(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := m.Put(ctx, key(1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
}

func TestMemoryConcurrent(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(32 << 10)
	defer m.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := (i*7 + g) % 300
				if i%3 == 0 {
					if err := m.Put(ctx, key(k), value(k, 200)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if v, ok, err := m.Get(ctx, key(k)); err != nil || ok && !bytes.Equal(v, value(k, 200)) {
					t.Errorf("key %d: Get = %v, %v", k, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	m.c.CleanUp()
	s := m.Stats()
	if s.Bytes > 32<<10 || s.Hits+s.Misses != 8*2000-8*667 {
		t.Fatalf("Stats = %+v", s)
	}
}
