package metrics

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// fnCounter is a counter vector with one label, function, whose distinct
// values are bounded: past the bound every new id counts as
// OtherFunction. Lookups of known ids take no lock.
type fnCounter struct {
	vec   *prometheus.CounterVec
	max   int
	m     atomic.Pointer[map[string]prometheus.Counter]
	mu    sync.Mutex
	n     atomic.Int64
	other prometheus.Counter
}

func newFnCounter(m *Metrics, name, help string) *fnCounter {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name(name), Help: help, ConstLabels: m.opts.ConstLabels}, []string{"function"})
	return &fnCounter{vec: vec, max: m.opts.MaxFunctions, other: vec.WithLabelValues(OtherFunction)}
}

// inc counts one event for function id.
func (c *fnCounter) inc(id string) { c.get(id).Inc() }

func (c *fnCounter) get(id string) prometheus.Counter {
	if p := c.m.Load(); p != nil {
		if x := (*p)[id]; x != nil {
			return x
		}
	}
	if c.n.Load() >= int64(c.max) {
		return c.other
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if x := (*old)[id]; x != nil {
			return x
		}
	}
	if c.n.Load() >= int64(c.max) {
		return c.other
	}
	id = strings.Clone(id)
	x := c.vec.WithLabelValues(id)
	next := make(map[string]prometheus.Counter, c.n.Load()+1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[id] = x
	c.m.Store(&next)
	c.n.Add(1)
	return x
}
