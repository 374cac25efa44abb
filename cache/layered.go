package cache

import (
	"context"
	"errors"
	"sync/atomic"
)

// Layered is two secondary caches as one, the near one first: a Disk in
// front of a Redis shared by a cluster, so that a result computed by any
// member is a hit everywhere, and a Redis outage still leaves this
// process its disk. Get asks near, then far, and copies a far hit into
// near; Put writes both.
//
// Like Tiered, a failing layer only costs a miss (its errors and panics
// are counted in Stats.Failures, not passed on), so one layer in trouble
// never fails a Get or a Put the other can serve. Layered owns both:
// Close closes them.
type Layered struct {
	near, far Cache

	hits, misses, puts, failures atomic.Int64
}

var _ Cache = (*Layered)(nil)

// NewLayered returns a cache that asks near before far.
func NewLayered(near, far Cache) *Layered {
	return &Layered{near: near, far: far}
}

// Get returns the value under k from near, or else from far, promoting it
// into near. A layer that fails is a miss of that layer.
func (l *Layered) Get(ctx context.Context, k Key) ([]byte, bool, error) {
	failed := false
	v, ok, err := secondaryGet(ctx, l.near, k)
	if err == nil && ok {
		l.hits.Add(1)
		return v, true, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		failed = true
	}
	v, ok, err = secondaryGet(ctx, l.far, k)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		failed = true
	}
	if failed {
		l.failures.Add(1)
	}
	if err != nil || !ok {
		l.misses.Add(1)
		return nil, false, nil
	}
	l.hits.Add(1)
	_ = secondaryPut(ctx, l.near, k, v) // a near layer in trouble keeps the far hit only
	return v, true, nil
}

// Put stores v in both layers. It fails only if both do (then with the
// near layer's error); a layer that fails alone is counted.
func (l *Layered) Put(ctx context.Context, k Key, v []byte) error {
	nerr := secondaryPut(ctx, l.near, k, v)
	ferr := secondaryPut(ctx, l.far, k, v)
	switch {
	case nerr != nil && ferr != nil:
		if ctx.Err() == nil {
			l.failures.Add(1)
		}
		return nerr
	case nerr != nil || ferr != nil:
		if ctx.Err() == nil {
			l.failures.Add(1)
		}
	}
	l.puts.Add(1)
	return nil
}

// Stats returns the layered view: Hits, Misses, Puts and Failures as
// Layered counted them; Evictions, Corrupt, Skips and Outages add up
// both layers; Entries, Bytes and MaxBytes are the near layer's (the far
// one, a Redis, cannot know them); Down says whether either layer is down.
// LayerStats gives each layer's own.
func (l *Layered) Stats() Stats {
	n, f := l.LayerStats()
	return Stats{
		Hits:      l.hits.Load(),
		Misses:    l.misses.Load(),
		Puts:      l.puts.Load(),
		Evictions: n.Evictions + f.Evictions,
		Corrupt:   n.Corrupt + f.Corrupt,
		Entries:   n.Entries,
		Bytes:     n.Bytes,
		MaxBytes:  n.MaxBytes,
		Failures:  l.failures.Load(),
		Skips:     n.Skips + f.Skips,
		Outages:   n.Outages + f.Outages,
		Down:      n.Down || f.Down,
	}
}

// LayerStats returns the near and the far layer's own stats.
func (l *Layered) LayerStats() (near, far Stats) { return l.near.Stats(), l.far.Stats() }

// Near returns the near layer.
func (l *Layered) Near() Cache { return l.near }

// Far returns the far layer.
func (l *Layered) Far() Cache { return l.far }

// Close closes both layers.
func (l *Layered) Close() error { return errors.Join(l.near.Close(), l.far.Close()) }
