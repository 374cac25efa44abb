package metrics

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
)

// The tiers and levels the tree metrics keep resolved series for.
var (
	tierNames  = [...]string{resolve.TierMemory, resolve.TierDisk, resolve.TierRedis, resolve.TierSecondary}
	levelCount = int(request.FullVB) + 1
)

func tierIndex(tier string) int {
	for i, t := range tierNames {
		if t == tier {
			return i
		}
	}
	return len(tierNames) - 1
}

// treeMetrics is the request-tree metrics.
type treeMetrics struct {
	hits, misses *prometheus.CounterVec // level, tier
	joins        *prometheus.CounterVec // level
	retries      *fnCounter
	inFlight     *prometheus.GaugeVec   // mode
	trees        *prometheus.CounterVec // mode, result
	requests     *prometheus.CounterVec // level, result
	engine       *engineCollector

	lookups  [len(tierNames)][int(request.FullVB) + 1][2]atomic.Pointer[counterRef] // tier, level, hit
	joinRefs [int(request.FullVB) + 1]atomic.Pointer[counterRef]
	modes    [2]treeMode // sync, async
	reqRefs  [int(request.FullVB) + 1][2]atomic.Pointer[counterRef]
}

type counterRef struct{ c prometheus.Counter }

type treeMode struct {
	inFlight prometheus.Gauge
	ok, err  prometheus.Counter
}

func newTreeMetrics(m *Metrics) *treeMetrics {
	cl := m.opts.ConstLabels
	t := &treeMetrics{}
	t.hits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("tree_cache_hits_total"), ConstLabels: cl,
		Help: "Request-tree cache lookups that found the result, by caching level and tier (memory, disk, redis)."}, []string{"level", "tier"})
	t.misses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("tree_cache_misses_total"), ConstLabels: cl,
		Help: "Request-tree cache lookups that did not find the result, by caching level and tier."}, []string{"level", "tier"})
	t.joins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("tree_singleflight_joins_total"), ConstLabels: cl,
		Help: "Requests that joined an identical request in flight instead of running, by caching level."}, []string{"level"})
	t.retries = newFnCounter(m, "tree_retries_total", "Function runs repeated after a retryable error in request trees, by function.")
	t.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.name("trees_in_flight"), ConstLabels: cl,
		Help: "Request trees being resolved, by mode (sync: arbor.resolve, async: arbor.submit)."}, []string{"mode"})
	t.trees = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("trees_total"), ConstLabels: cl,
		Help: "Request trees resolved, by mode and result (ok, error)."}, []string{"mode", "result"})
	t.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("tree_requests_total"), ConstLabels: cl,
		Help: "Requests (nodes) of trees resolved, by caching level and result (ok, error)."}, []string{"level", "result"})
	for i, mode := range []string{"sync", "async"} {
		t.modes[i] = treeMode{inFlight: t.inFlight.WithLabelValues(mode),
			ok: t.trees.WithLabelValues(mode, "ok"), err: t.trees.WithLabelValues(mode, "error")}
	}
	t.engine = newEngineCollector(m)
	return t
}

func (t *treeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{t.hits, t.misses, t.joins, t.retries.vec, t.inFlight, t.trees, t.requests, t.engine}
}

// ref resolves a counter once and keeps it in slot.
func ref(slot *atomic.Pointer[counterRef], mk func() prometheus.Counter) prometheus.Counter {
	if r := slot.Load(); r != nil {
		return r.c
	}
	r := &counterRef{mk()}
	if !slot.CompareAndSwap(nil, r) {
		r = slot.Load()
	}
	return r.c
}

func levelIndex(l request.Level) int {
	if int(l) < levelCount {
		return int(l)
	}
	return 0
}

// TreeObserver returns the resolve.Observer that feeds the request-tree
// metrics: pass it as tree.Config.Observer (or resolve.Config.Observer).
func (m *Metrics) TreeObserver() resolve.Observer { return treeObserver{m.tree} }

type treeObserver struct{ t *treeMetrics }

func mode(async bool) int {
	if async {
		return 1
	}
	return 0
}

func (o treeObserver) TreeStarted(ctx context.Context, async bool) {
	o.t.modes[mode(async)].inFlight.Inc()
}

func (o treeObserver) TreeEnded(ctx context.Context, async bool, err error) {
	md := &o.t.modes[mode(async)]
	md.inFlight.Dec()
	if err != nil {
		md.err.Inc()
	} else {
		md.ok.Inc()
	}
}

func (o treeObserver) NodeStarted(ctx context.Context, n *resolve.NodeInfo) context.Context {
	return ctx
}

func (o treeObserver) NodeEnded(ctx context.Context, n *resolve.NodeInfo, err error) {
	l := levelIndex(n.Level)
	res := 0
	if err != nil {
		res = 1
	}
	ref(&o.t.reqRefs[l][res], func() prometheus.Counter {
		return o.t.requests.WithLabelValues(request.Level(l).String(), [...]string{"ok", "error"}[res])
	}).Inc()
}

func (o treeObserver) CacheLookup(ctx context.Context, level request.Level, tier string, hit bool) {
	ti, l := tierIndex(tier), levelIndex(level)
	h := 0
	vec := o.t.misses
	if hit {
		h, vec = 1, o.t.hits
	}
	ref(&o.t.lookups[ti][l][h], func() prometheus.Counter {
		return vec.WithLabelValues(request.Level(l).String(), tierNames[ti])
	}).Inc()
}

func (o treeObserver) Joined(ctx context.Context, level request.Level) {
	l := levelIndex(level)
	ref(&o.t.joinRefs[l], func() prometheus.Counter { return o.t.joins.WithLabelValues(request.Level(l).String()) }).Inc()
}

func (o treeObserver) Retried(ctx context.Context, id string) { o.t.retries.inc(id) }

// WatchEngine reports e's caches at every scrape: entries, bytes, bound,
// evictions, puts, failures and whether a tier is down, by tier; and the
// asynchronous trees it holds. One engine is watched at a time; a later
// call replaces the earlier. Nil stops watching.
func (m *Metrics) WatchEngine(e *resolve.Engine) { m.tree.engine.e.Store(e) }

// engineCollector reads a resolve.Engine's Stats at scrape time.
type engineCollector struct {
	e                                                atomic.Pointer[resolve.Engine]
	entries, bytes, maxBytes, evictions, puts, fails *prometheus.Desc
	corrupt, down, held, skips                       *prometheus.Desc
}

func newEngineCollector(m *Metrics) *engineCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(m.name(name), help, labels, m.opts.ConstLabels)
	}
	return &engineCollector{
		entries:   d("tree_cache_entries", "Entries held by the request-tree cache, by tier.", "tier"),
		bytes:     d("tree_cache_bytes", "Bytes the request-tree cache holds (with per-entry overhead), by tier.", "tier"),
		maxBytes:  d("tree_cache_max_bytes", "The byte bound of the request-tree cache, by tier.", "tier"),
		evictions: d("tree_cache_evictions_total", "Entries evicted to stay within the bound, by tier.", "tier"),
		puts:      d("tree_cache_puts_total", "Results stored, by tier.", "tier"),
		fails:     d("tree_cache_failures_total", "Cache operations that failed (I/O, timeouts), by tier; each costs a miss.", "tier"),
		corrupt:   d("tree_cache_corrupt_total", "Entries that failed their checksum and were removed, by tier.", "tier"),
		skips:     d("tree_cache_skips_total", "Operations skipped because the tier was down, by tier.", "tier"),
		down:      d("tree_cache_down", "1 while a tier is down (skipping operations until it recovers).", "tier"),
		held:      d("trees_held", "Asynchronous request trees held, running or finished."),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.bytes, c.maxBytes, c.evictions, c.puts, c.fails, c.corrupt, c.skips, c.down, c.held} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e.Load()
	if e == nil {
		return
	}
	st := e.Stats()
	_, sec := e.Caches()
	tier := func(name string, s resolve.Stats, cs cache.Stats) {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		k := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		g(c.entries, float64(cs.Entries))
		g(c.bytes, float64(cs.Bytes))
		g(c.maxBytes, float64(cs.MaxBytes))
		k(c.evictions, float64(cs.Evictions))
		k(c.puts, float64(cs.Puts))
		k(c.fails, float64(cs.Failures))
		k(c.corrupt, float64(cs.Corrupt))
		k(c.skips, float64(cs.Skips))
		down := 0.0
		if cs.Down {
			down = 1
		}
		g(c.down, down)
	}
	tier(resolve.TierMemory, st, st.Memory)
	if st.Secondary != nil && sec != nil {
		tier(resolve.SecondaryTier(sec), st, *st.Secondary)
	}
	ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(st.Trees))
}
