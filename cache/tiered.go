package cache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Tiered is a Memory cache in front of a secondary cache (Disk or Redis):
// the "+full" caching level. Get asks memory first, then the secondary,
// and copies a secondary hit into memory; Put writes both tiers.
//
// A failing secondary tier only ever costs a miss: its errors, and its
// panics, are not passed on but counted in Stats.Failures (the secondary
// logs its outages itself, once). Only the memory tier's ErrClosed comes
// back.
//
// Tiered owns both tiers: Close closes them.
type Tiered struct {
	mem       *Memory
	secondary Cache

	hits, misses, puts, failures atomic.Int64
}

var _ Cache = (*Tiered)(nil)

// NewTiered returns a cache that puts mem in front of secondary.
func NewTiered(mem *Memory, secondary Cache) *Tiered {
	return &Tiered{mem: mem, secondary: secondary}
}

// Get returns the value under k from memory, or else from the secondary
// tier, promoting it into memory. A secondary tier that fails is a miss.
func (t *Tiered) Get(ctx context.Context, k Key) ([]byte, bool, error) {
	if v, ok, err := t.mem.Get(ctx, k); err != nil || ok {
		if ok {
			t.hits.Add(1)
		}
		return v, ok, err
	}
	v, ok, err := secondaryGet(ctx, t.secondary, k)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err() // the caller gave up; not the tier's failure
		}
		t.failures.Add(1)
		t.misses.Add(1)
		return nil, false, nil
	}
	if !ok {
		t.misses.Add(1)
		return nil, false, nil
	}
	t.hits.Add(1)
	_ = t.mem.Put(ctx, k, v) // fails only once closed
	return v, true, nil
}

// Put stores v in memory and in the secondary tier. A secondary tier that
// fails does not fail the Put: the value is in memory.
func (t *Tiered) Put(ctx context.Context, k Key, v []byte) error {
	if err := t.mem.Put(ctx, k, v); err != nil {
		return err
	}
	if err := secondaryPut(ctx, t.secondary, k, v); err != nil {
		if ctx.Err() == nil {
			t.failures.Add(1)
		}
		return nil
	}
	t.puts.Add(1)
	return nil
}

// secondaryGet is c.Get with a panic turned into an error.
func secondaryGet(ctx context.Context, c Cache, k Key) (v []byte, ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, ok, err = nil, false, fmt.Errorf("cache: secondary tier panicked: %v", p)
		}
	}()
	return c.Get(ctx, k)
}

// secondaryPut is c.Put with a panic turned into an error.
func secondaryPut(ctx context.Context, c Cache, k Key, v []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cache: secondary tier panicked: %v", p)
		}
	}()
	return c.Put(ctx, k, v)
}

// Stats returns the tiered view: Hits counts Gets answered by either tier,
// Misses those answered by neither (a failed secondary included), Puts
// those both tiers took, Failures the secondary's failures that Tiered
// turned into misses and memory-only Puts; Evictions and Corrupt add up
// both tiers; Entries, Bytes, MaxBytes, Skips, Outages and Down are the
// secondary tier's, which holds (nearly) everything the memory tier does.
// TierStats gives each tier's own.
func (t *Tiered) Stats() Stats {
	m, s := t.TierStats()
	return Stats{
		Hits:      t.hits.Load(),
		Misses:    t.misses.Load(),
		Puts:      t.puts.Load(),
		Evictions: m.Evictions + s.Evictions,
		Corrupt:   m.Corrupt + s.Corrupt,
		Entries:   s.Entries,
		Bytes:     s.Bytes,
		MaxBytes:  s.MaxBytes,
		Failures:  t.failures.Load(),
		Skips:     s.Skips,
		Outages:   s.Outages,
		Down:      s.Down,
	}
}

// TierStats returns the memory tier's and the secondary tier's own stats.
// The memory tier's misses are the Gets that went on to the secondary.
func (t *Tiered) TierStats() (memory, secondary Stats) {
	return t.mem.Stats(), t.secondary.Stats()
}

// Memory returns the memory tier.
func (t *Tiered) Memory() *Memory { return t.mem }

// Secondary returns the secondary tier.
func (t *Tiered) Secondary() Cache { return t.secondary }

// Close closes both tiers.
func (t *Tiered) Close() error {
	return errors.Join(t.mem.Close(), t.secondary.Close())
}
