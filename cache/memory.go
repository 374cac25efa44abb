package cache

import (
	"context"
	"math"
	"sync/atomic"

	"github.com/maypok86/otter/v2"
)

// DefaultMemoryBytes is the bound of a Memory cache made with maxBytes <= 0.
const DefaultMemoryBytes int64 = 1 << 30

// memEntryOverhead is what a Memory cache charges per entry on top of the
// key and value bytes: an estimate of otter's node and hash-table slot.
const memEntryOverhead = 64

// Memory is a byte-bounded in-process cache. An entry weighs the length of
// its key and value plus a fixed overhead; when the total passes the bound,
// otter's W-TinyLFU policy evicts the entries least likely to be used again.
//
// Memory keeps values as given and Get returns them as kept, without a
// copy: neither the caller of Put nor the caller of Get may modify the
// slice. A value heavier than the whole bound is not kept.
//
// Memory never fails: its Get and Put return a non-nil error only after
// Close. The context is not consulted.
type Memory struct {
	c        *otter.Cache[Key, []byte]
	maxBytes int64
	closed   atomic.Bool

	_         [64]byte // keep the hot counters off the read-mostly fields' line
	hits      atomic.Int64
	_         [56]byte
	misses    atomic.Int64
	puts      atomic.Int64
	evictions atomic.Int64
}

var _ Cache = (*Memory)(nil)

// NewMemory returns an empty Memory cache bounded to maxBytes, or to
// DefaultMemoryBytes when maxBytes <= 0.
func NewMemory(maxBytes int64) *Memory {
	if maxBytes <= 0 {
		maxBytes = DefaultMemoryBytes
	}
	m := &Memory{maxBytes: maxBytes}
	m.c = otter.Must(&otter.Options[Key, []byte]{
		MaximumWeight: uint64(maxBytes),
		Weigher:       memWeight,
		OnAtomicDeletion: func(e otter.DeletionEvent[Key, []byte]) {
			if e.WasEvicted() {
				m.evictions.Add(1)
			}
		},
	})
	return m
}

func memWeight(_ Key, v []byte) uint32 {
	w := uint64(len(Key{})) + uint64(len(v)) + memEntryOverhead
	if w > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(w)
}

// Get returns the value stored under k; the slice is shared, not copied.
func (m *Memory) Get(_ context.Context, k Key) ([]byte, bool, error) {
	if m.closed.Load() {
		return nil, false, ErrClosed
	}
	v, ok := m.c.GetIfPresent(k)
	if !ok {
		m.misses.Add(1)
		return nil, false, nil
	}
	m.hits.Add(1)
	return v, true, nil
}

// Put stores v under k without copying it. A value whose weight exceeds the
// cache's bound is dropped (and any older value under k removed).
func (m *Memory) Put(_ context.Context, k Key, v []byte) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if int64(memWeight(k, v)) > m.maxBytes || uint64(len(v)) >= math.MaxUint32 {
		m.c.Invalidate(k)
		return nil
	}
	m.c.Set(k, v)
	m.puts.Add(1)
	return nil
}

// Stats returns the cache's counters. Entries and Bytes are otter's
// estimates and may lag writes that are still being applied.
func (m *Memory) Stats() Stats {
	return Stats{
		Hits:      m.hits.Load(),
		Misses:    m.misses.Load(),
		Puts:      m.puts.Load(),
		Evictions: m.evictions.Load(),
		Entries:   int64(m.c.EstimatedSize()),
		Bytes:     int64(m.c.WeightedSize()),
		MaxBytes:  m.maxBytes,
	}
}

// Close drops every entry. Get and Put fail with ErrClosed afterwards.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.c.InvalidateAll()
	m.c.CleanUp()
	return nil
}
