package metrics

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor"
)

// OtherFunction is the function label of calls whose id gets no label of
// its own (unknown to the watched server's catalog, or past
// Options.MaxFunctions).
const OtherFunction = "_other"

// Options configure Metrics. The zero value is usable.
type Options struct {
	// Namespace starts every metric name (default "arbor").
	Namespace string
	// Buckets are the latency histograms' upper bounds in seconds,
	// positive and increasing, New refuses others (default: 25µs doubling
	// to about 13s, 20 buckets).
	Buckets []float64
	// MaxFunctions bounds the distinct function labels per side (and for
	// cluster counters); default 500.
	MaxFunctions int
	// ConstLabels are added to every metric (an instance name, say).
	ConstLabels prometheus.Labels
}

// maxBucket is the largest histogram bound, in seconds: latencies are
// counted in int64 nanoseconds (about 292 years).
const maxBucket = float64(math.MaxInt64/1e9) - 1

// DefaultBuckets are the latency buckets used when Options.Buckets is
// empty: 25µs, 50µs, … about 13s.
func DefaultBuckets() []float64 { return prometheus.ExponentialBuckets(25e-6, 2, 20) }

// Metrics holds the collectors of one instrumented process, registered on
// the registry given to New. Its methods are safe for concurrent use.
type Metrics struct {
	opts   Options
	reg    prometheus.Registerer
	server *side
	client *side
	conns  *connMetrics
	tree   *treeMetrics
	clust  *clusterMetrics

	watched atomic.Pointer[arbor.Server]
}

// New makes the collectors and registers them on reg. It fails if reg
// already has collectors of the same names (a second Metrics on one
// registry needs other ConstLabels or another Namespace).
func New(reg prometheus.Registerer, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("metrics: nil Registerer")
	}
	if opts.Namespace == "" {
		opts.Namespace = "arbor"
	}
	if len(opts.Buckets) == 0 {
		opts.Buckets = DefaultBuckets()
	}
	for i, b := range opts.Buckets {
		if !(b > 0) || b > maxBucket || (i > 0 && b <= opts.Buckets[i-1]) {
			return nil, fmt.Errorf("metrics: Options.Buckets[%d] is %v: the bounds must be positive, increasing and at most %v seconds", i, b, maxBucket)
		}
	}
	if opts.MaxFunctions <= 0 {
		opts.MaxFunctions = 500
	}
	m := &Metrics{opts: opts, reg: reg}
	m.server = newSide(m, "server")
	m.client = newSide(m, "client")
	m.conns = newConnMetrics(m)
	m.tree = newTreeMetrics(m)
	m.clust = newClusterMetrics(m)
	var cs []prometheus.Collector
	cs = append(cs, m.server.collectors()...)
	cs = append(cs, m.client.collectors()...)
	cs = append(cs, m.conns.collectors()...)
	cs = append(cs, m.tree.collectors()...)
	cs = append(cs, m.clust.collectors()...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs {
				if done == c {
					break
				}
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("metrics: registering: %w", err)
		}
	}
	return m, nil
}

// name is a metric's name with the namespace.
func (m *Metrics) name(parts ...string) string {
	return prometheus.BuildFQName(m.opts.Namespace, "", joinName(parts))
}

func joinName(parts []string) string {
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += "_"
		}
		s += p
	}
	return s
}

// WatchServer ties the server-side function labels to srv's catalog: ids
// it has not registered are counted as OtherFunction. Call it once the
// server exists (its observer was made before).
func (m *Metrics) WatchServer(srv *arbor.Server) { m.watched.Store(srv) }
