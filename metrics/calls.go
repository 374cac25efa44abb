package metrics

import (
	"context"
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/status"
)

// numCodes is the number of codes with a cached counter per function.
const numCodes = int(status.Unauthenticated) + 1

// side is the per-function metrics of one side: "server" (calls served)
// or "client" (calls made). The figures are plain atomic counters,
// collected into Prometheus metrics at scrape time (collect): recording a
// call is a handful of atomic adds, no compare-and-swap loop and no
// allocation.
type side struct {
	m      *Metrics
	name   string
	bounds []int64 // histogram upper bounds in nanoseconds
	// firstAtLeast[k] is how many bounds are below 2^(k-1), the least
	// duration of bit length k: the first bucket such a duration can fall in.
	firstAtLeast [66]uint32
	upper        []float64
	dCalls       *prometheus.Desc // function, code
	dDur         *prometheus.Desc // function
	dFlight      *prometheus.Desc // function
	dRecv        *prometheus.Desc // function
	dSent        *prometheus.Desc // function

	fns     atomic.Pointer[map[string]*fnStats] // copied on write: lookups take no lock
	hot     hotCache                            // in front of fns: most calls hit it
	mu      sync.Mutex
	labeled atomic.Int64
	other   *fnStats
}

func newSide(m *Metrics, name string) *side {
	s := &side{m: m, name: name, upper: m.opts.Buckets}
	for _, b := range m.opts.Buckets {
		s.bounds = append(s.bounds, int64(b*1e9))
	}
	for k := range s.firstAtLeast {
		least := int64(math.MaxInt64) // no duration is longer: every bound is below
		if k == 0 {
			least = 0
		} else if k <= 63 {
			least = int64(1) << (k - 1)
		}
		s.firstAtLeast[k] = uint32(bucketOf(s.bounds, 0, len(s.bounds), least))
	}
	cl := m.opts.ConstLabels
	s.dCalls = prometheus.NewDesc(m.name(name, "calls_total"), "Calls "+verb(name)+", by function and status code.", []string{"function", "code"}, cl)
	s.dDur = prometheus.NewDesc(m.name(name, "call_duration_seconds"), "Latency of calls "+verb(name)+" (streams: their whole life), by function.", []string{"function"}, cl)
	s.dFlight = prometheus.NewDesc(m.name(name, "calls_in_flight"), "Calls "+verb(name)+" that have not finished, by function.", []string{"function"}, cl)
	s.dRecv = prometheus.NewDesc(m.name(name, "received_bytes_total"), "Encoded bytes received in calls "+verb(name)+" (arguments or results, and stream messages), by function.", []string{"function"}, cl)
	s.dSent = prometheus.NewDesc(m.name(name, "sent_bytes_total"), "Encoded bytes sent in calls "+verb(name)+" (arguments or results, and stream messages), by function.", []string{"function"}, cl)
	s.other = s.newFn(OtherFunction)
	return s
}

func verb(side string) string {
	if side == "server" {
		return "served"
	}
	return "made"
}

func (s *side) collectors() []prometheus.Collector { return []prometheus.Collector{s} }

// Describe implements prometheus.Collector.
func (s *side) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.dCalls, s.dDur, s.dFlight, s.dRecv, s.dSent} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: every function label that has
// seen a call.
func (s *side) Collect(ch chan<- prometheus.Metric) {
	for _, f := range s.all() {
		v := f.read()
		if v.started == 0 {
			continue
		}
		for c, n := range v.codes {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(s.dCalls, prometheus.CounterValue, float64(n), f.label, c)
			}
		}
		ch <- prometheus.MustNewConstHistogram(s.dDur, v.count, v.sum, v.cumulative, f.label)
		ch <- prometheus.MustNewConstMetric(s.dFlight, prometheus.GaugeValue, float64(v.inFlight), f.label)
		ch <- prometheus.MustNewConstMetric(s.dRecv, prometheus.CounterValue, float64(v.recv), f.label)
		ch <- prometheus.MustNewConstMetric(s.dSent, prometheus.CounterValue, float64(v.sent), f.label)
	}
}

// all lists the side's function stats, OtherFunction's included.
func (s *side) all() []*fnStats {
	var out []*fnStats
	if p := s.fns.Load(); p != nil {
		for _, f := range *p {
			out = append(out, f)
		}
	}
	return append(out, s.other)
}

// fnStats is the figures of one function label on one side, in shards:
// concurrent calls mostly write different shards (picked by the address
// of their call state), so that cores do not fight over one cache line
// per counter. Readings sum the shards.
type fnStats struct {
	s      *side
	label  string
	shards [numShards]*fnShard
	mu     sync.Mutex
	odd    map[status.Code]int64 // codes past numCodes (a peer's invention)
}

const numShards = 8

type fnShard struct {
	// A successful call writes the first five words (one cache line: a
	// shard is allocated on one) and one bucket.
	started atomic.Int64
	nanos   atomic.Int64 // latencies' sum
	recv    atomic.Int64
	sent    atomic.Int64
	codes   [numCodes]atomic.Int64 // calls ended, by code (OK first)
	buckets []atomic.Int64         // by upper bound; the last is +Inf
	_       [64]byte               // keeps the next shard's counters off this one's cache lines
}

func (s *side) newFn(label string) *fnStats {
	f := &fnStats{s: s, label: label}
	n := len(s.bounds) + 1
	for i := range f.shards {
		// Rounded up to whole cache lines: allocations of a multiple of
		// 64 bytes start on a line, so no two shards' buckets share one.
		f.shards[i] = &fnShard{buckets: make([]atomic.Int64, n, (n+7)&^7)}
	}
	return f
}

// shardOf picks a shard for the call whose state is at p.
func shardOf(p unsafe.Pointer) int {
	return int((uint64(uintptr(p)) * 0x9E3779B97F4A7C15) >> (64 - 3))
}

// get returns the stats of function id (method: a capability's method,
// which no catalog lists).
func (s *side) get(id string, method bool) *fnStats {
	slot := s.hot.slot(id)
	if f := slot.Load(); f != nil && f.label == id {
		return f
	}
	if p := s.fns.Load(); p != nil {
		if f := (*p)[id]; f != nil {
			slot.Store(f)
			return f
		}
	}
	// OtherFunction's label is s.other's: a function of that name (a
	// peer picks the ids it sends) given a series of its own would
	// duplicate it, and every scrape of the registry would fail.
	if id == OtherFunction {
		return s.other
	}
	// Unknown ids never enter the table, so a peer sending ever new ids
	// neither grows it nor takes the lock.
	if s.name == "server" && !method {
		if srv := s.m.watched.Load(); srv != nil {
			if _, ok := srv.Function(id); !ok {
				return s.other
			}
		}
	}
	if s.labeled.Load() >= int64(s.m.opts.MaxFunctions) {
		return s.other
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.fns.Load()
	if old != nil {
		if f := (*old)[id]; f != nil {
			return f
		}
	}
	if s.labeled.Load() >= int64(s.m.opts.MaxFunctions) {
		return s.other
	}
	id = strings.Clone(id) // the caller's may point into a reused buffer
	f := s.newFn(id)
	next := make(map[string]*fnStats, s.labeled.Load()+1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[id] = f
	s.fns.Store(&next)
	s.labeled.Add(1)
	return f
}

// start records a call starting; shard is shardOf its call state.
func (f *fnStats) start(shard int) { f.shards[shard].started.Add(1) }

// done records a finished call.
func (f *fnStats) done(shard int, err error, elapsed time.Duration, recv, sent int64) {
	sh := f.shards[shard]
	if c := codeOf(err); int(c) < numCodes {
		sh.codes[c].Add(1)
	} else {
		f.mu.Lock()
		if f.odd == nil {
			f.odd = map[status.Code]int64{}
		}
		if len(f.odd) < 16 || f.odd[c] > 0 { // bounded: a peer may invent codes
			f.odd[c]++
		} else {
			f.odd[status.Unknown]++
		}
		f.mu.Unlock()
	}
	ns := int64(elapsed)
	sh.buckets[f.s.bucket(ns)].Add(1)
	sh.nanos.Add(ns)
	if recv > 0 {
		sh.recv.Add(recv)
	}
	if sent > 0 {
		sh.sent.Add(sent)
	}
}

// bucket is the index of the first bound at or above ns (len(bounds):
// +Inf). It searches only among the bounds in ns's power of two
// (firstAtLeast), which for the default doubling buckets is at most one.
func (s *side) bucket(ns int64) int {
	if ns <= 0 {
		return 0
	}
	k := bits.Len64(uint64(ns)) // 2^(k-1) <= ns < 2^k
	return bucketOf(s.bounds, int(s.firstAtLeast[k]), int(s.firstAtLeast[k+1]), ns)
}

// bucketOf is the index of the first of b[lo:hi] at or above ns (hi if
// none), sort.Search without its closure.
func bucketOf(b []int64, lo, hi int, ns int64) int {
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b[m] < ns {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// hotCache is a small direct-mapped cache in front of a side's map of
// function stats: a hit costs a hash of a few bytes and one string
// comparison instead of a map lookup (two per call per side). It only
// holds labeled functions, and is written only on a miss, so a steady
// load reads it without writing.
type hotCache struct {
	slots [hotSlots]atomic.Pointer[fnStats]
}

const hotSlots = 64

func (c *hotCache) slot(id string) *atomic.Pointer[fnStats] {
	h := uint(len(id))
	if len(id) > 0 {
		h = h*31 + uint(id[0])
		h = h*31 + uint(id[len(id)-1])
		h = h*31 + uint(id[len(id)/2])
	}
	return &c.slots[h%hotSlots]
}

// fnValues is a reading of one fnStats.
type fnValues struct {
	started, ended, inFlight int64
	codes                    map[string]int64
	count                    uint64
	sum                      float64 // seconds
	cumulative               map[float64]uint64
	recv, sent               int64
}

func (f *fnStats) read() fnValues {
	v := fnValues{codes: map[string]int64{}, cumulative: make(map[float64]uint64, len(f.s.upper))}
	// Ends before starts: a call that ends meanwhile is never counted as
	// ended and not started.
	var codes [numCodes]int64
	counts := make([]uint64, len(f.s.bounds)+1)
	for _, sh := range f.shards {
		for c := range sh.codes {
			codes[c] += sh.codes[c].Load()
		}
		for i := range sh.buckets {
			counts[i] += uint64(sh.buckets[i].Load())
		}
		v.sum += float64(sh.nanos.Load()) / 1e9
		v.recv += sh.recv.Load()
		v.sent += sh.sent.Load()
	}
	for c, n := range codes {
		if n > 0 {
			v.codes[status.Code(c).String()] = n
			v.ended += n
		}
	}
	f.mu.Lock()
	for c, n := range f.odd {
		v.codes[c.String()] += n
		v.ended += n
	}
	f.mu.Unlock()
	for _, sh := range f.shards {
		v.started += sh.started.Load()
	}
	v.inFlight = max(v.started-v.ended, 0)
	var cum uint64
	for i, n := range counts {
		cum += n
		if i < len(f.s.upper) {
			v.cumulative[f.s.upper[i]] = cum
		}
	}
	v.count = cum
	return v
}

// codeOf is the status code of err, without the allocation that
// errors.As into *arbor.Error costs for a lower layer's error.
func codeOf(err error) status.Code {
	switch e := err.(type) {
	case nil:
		return status.OK
	case *status.Error:
		return e.Code
	case *arbor.Error:
		return status.Code(e.Code)
	}
	return status.Code(arbor.CodeOf(err))
}

// ServerInterceptor records the calls a server serves, in process ones
// (Server.Invoke, the functions of request trees) included. Use it
// instead of Observer on a server, not with it.
func (m *Metrics) ServerInterceptor() arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			f := m.server.get(req.ID, req.Service != "")
			shard := shardOf(unsafe.Pointer(req))
			start := time.Now()
			f.start(shard)
			resp, err := next(ctx, req)
			var out int64
			if resp != nil {
				out = int64(len(resp.Result))
			}
			f.done(shard, err, time.Since(start), int64(len(req.Args)), out)
			return resp, err
		}
	}
}

// ClientInterceptor records the calls a client (or any Caller it wraps)
// makes. Use it instead of Observer on a client, not with it. A stream
// or an Async call (a promise) is followed to its end (Response.OnEnd):
// its outcome and latency are those of the whole call, but its bytes are
// only the arguments it was opened or sent with (Observer counts stream
// messages and a promise's result too).
func (m *Metrics) ClientInterceptor() arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			f := m.client.get(req.ID, req.Target != nil)
			shard := shardOf(unsafe.Pointer(req))
			start := time.Now()
			f.start(shard)
			resp, err := next(ctx, req)
			out := int64(len(req.Args))
			if err == nil && resp != nil && (req.Async || req.Kind.IsStream()) {
				// Followed to its end: the answer's arrival, the stream's end.
				resp.OnEnd(func(err error) { f.done(shard, err, time.Since(start), 0, out) })
				return resp, err
			}
			var in int64
			if resp != nil {
				in = int64(len(resp.Result))
			}
			f.done(shard, err, time.Since(start), in, out)
			return resp, err
		}
	}
}
