package metrics

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/status"
)

// numCodes is the number of codes with a cached counter per function.
const numCodes = int(status.Unauthenticated) + 1

// side is the per-function metrics of one side: "server" (calls served)
// or "client" (calls made).
type side struct {
	m        *Metrics
	name     string
	calls    *prometheus.CounterVec   // function, code
	duration *prometheus.HistogramVec // function
	inflight *prometheus.GaugeVec     // function
	recv     *prometheus.CounterVec   // function
	sent     *prometheus.CounterVec   // function

	fns     atomic.Pointer[map[string]*fnStats] // copied on write: lookups take no lock
	mu      sync.Mutex
	labeled atomic.Int64
	other   *fnStats
}

func newSide(m *Metrics, name string) *side {
	s := &side{m: m, name: name}
	cl := m.opts.ConstLabels
	s.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name(name, "calls_total"), ConstLabels: cl,
		Help: "Calls " + verb(name) + ", by function and status code."}, []string{"function", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: m.name(name, "call_duration_seconds"), ConstLabels: cl,
		Help: "Latency of calls " + verb(name) + " (streams: their whole life), by function.", Buckets: m.opts.Buckets}, []string{"function"})
	s.inflight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.name(name, "calls_in_flight"), ConstLabels: cl,
		Help: "Calls " + verb(name) + " that have not finished, by function."}, []string{"function"})
	s.recv = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name(name, "received_bytes_total"), ConstLabels: cl,
		Help: "Encoded bytes received in calls " + verb(name) + " (arguments or results, and stream messages), by function."}, []string{"function"})
	s.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name(name, "sent_bytes_total"), ConstLabels: cl,
		Help: "Encoded bytes sent in calls " + verb(name) + " (arguments or results, and stream messages), by function."}, []string{"function"})
	s.other = s.newFn(OtherFunction)
	return s
}

func verb(side string) string {
	if side == "server" {
		return "served"
	}
	return "made"
}

func (s *side) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.calls, s.duration, s.inflight, s.recv, s.sent}
}

// fnStats is the metrics of one function label on one side, resolved
// once so that recording a call allocates nothing.
type fnStats struct {
	s        *side
	label    string
	codes    [numCodes]atomic.Pointer[codeCounter]
	latency  prometheus.Observer
	inflight prometheus.Gauge
	recv     prometheus.Counter
	sent     prometheus.Counter
}

type codeCounter struct{ c prometheus.Counter }

func (s *side) newFn(label string) *fnStats {
	return &fnStats{s: s, label: label,
		latency:  s.duration.WithLabelValues(label),
		inflight: s.inflight.WithLabelValues(label),
		recv:     s.recv.WithLabelValues(label),
		sent:     s.sent.WithLabelValues(label),
	}
}

// get returns the stats of function id (method: a capability's method,
// which no catalog lists).
func (s *side) get(id string, method bool) *fnStats {
	if p := s.fns.Load(); p != nil {
		if f := (*p)[id]; f != nil {
			return f
		}
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

// counter returns the calls counter of code c.
func (f *fnStats) counter(c status.Code) prometheus.Counter {
	if int(c) >= numCodes {
		return f.s.calls.WithLabelValues(f.label, c.String())
	}
	if cc := f.codes[c].Load(); cc != nil {
		return cc.c
	}
	cc := &codeCounter{f.s.calls.WithLabelValues(f.label, c.String())}
	if !f.codes[c].CompareAndSwap(nil, cc) {
		cc = f.codes[c].Load()
	}
	return cc.c
}

// done records a finished call.
func (f *fnStats) done(err error, elapsed time.Duration, recv, sent int64) {
	f.inflight.Dec()
	f.counter(codeOf(err)).Inc()
	f.latency.Observe(elapsed.Seconds())
	if recv > 0 {
		f.recv.Add(float64(recv))
	}
	if sent > 0 {
		f.sent.Add(float64(sent))
	}
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
			start := time.Now()
			f.inflight.Inc()
			resp, err := next(ctx, req)
			var out int64
			if resp != nil {
				out = int64(len(resp.Result))
			}
			f.done(err, time.Since(start), int64(len(req.Args)), out)
			return resp, err
		}
	}
}

// ClientInterceptor records the calls a client (or any Caller it wraps)
// makes. Use it instead of Observer on a client, not with it.
func (m *Metrics) ClientInterceptor() arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			f := m.client.get(req.ID, req.Target != nil)
			start := time.Now()
			f.inflight.Inc()
			resp, err := next(ctx, req)
			var in int64
			if resp != nil {
				in = int64(len(resp.Result))
			}
			f.done(err, time.Since(start), in, int64(len(req.Args)))
			return resp, err
		}
	}
}
