package cache

import (
	"context"
	"errors"
	"sync/atomic"
)

// Tiered is a Memory cache in front of a secondary cache (Disk or Redis):
// the "+full" caching level. Get asks memory first, then the secondary,
// and copies a secondary hit into memory; Put writes both tiers.
//
// Tiered owns both tiers: Close closes them.
type Tiered struct {
	mem       *Memory
	secondary Cache

	hits, misses, puts atomic.Int64
}

var _ Cache = (*Tiered)(nil)

// NewTiered returns a cache that puts mem in front of secondary.
func NewTiered(mem *Memory, secondary Cache) *Tiered {
	return &Tiered{mem: mem, secondary: secondary}
}

// Get returns the value under k from memory, or else from the secondary
// tier, promoting it into memory. An error from the secondary tier is
// returned with a miss; callers may treat it as a plain miss.
func (t *Tiered) Get(ctx context.Context, k Key) ([]byte, bool, error) {
	if v, ok, err := t.mem.Get(ctx, k); err != nil || ok {
		if ok {
			t.hits.Add(1)
		}
		return v, ok, err
	}
	v, ok, err := t.secondary.Get(ctx, k)
	if err != nil || !ok {
		if err == nil {
			t.misses.Add(1)
		}
		return nil, false, err
	}
	t.hits.Add(1)
	_ = t.mem.Put(ctx, k, v) // fails only once closed
	return v, true, nil
}

// Put stores v in memory and in the secondary tier. The value is in memory
// even when the secondary tier fails; that failure is returned.
func (t *Tiered) Put(ctx context.Context, k Key, v []byte) error {
	if err := t.mem.Put(ctx, k, v); err != nil {
		return err
	}
	if err := t.secondary.Put(ctx, k, v); err != nil {
		return err
	}
	t.puts.Add(1)
	return nil
}

// Stats returns the tiered view: Hits counts Gets answered by either tier,
// Misses those answered by neither, Puts those both tiers took; Evictions
// and Corrupt add up both tiers; Entries, Bytes and MaxBytes are the
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
