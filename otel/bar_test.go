package arborotel_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/metrics"
	arborotel "github.com/arbor-rpc/arbor/otel"
)

// barSetup is one configuration of the observability bar (BENCHMARKS.md):
// what observes the server and the client, and the context calls run in.
type barSetup struct {
	name    string
	metrics bool
	sampler sdktrace.Sampler // nil: no tracing
	nop     bool             // an observer that does nothing: what observing costs the connection itself
	// parent starts the span the calls run under (nil: none, each call a
	// new root for the client's sampler).
	parent bool
}

var barSetups = []barSetup{
	{name: "off"},
	{name: "metrics", metrics: true},
	{name: "nop", nop: true},
	{name: "metrics+tracing-unsampled", metrics: true, sampler: sdktrace.ParentBased(sdktrace.NeverSample()), parent: true},
	{name: "metrics+tracing-unsampled-roots", metrics: true, sampler: sdktrace.ParentBased(sdktrace.NeverSample())},
	{name: "metrics+tracing-sampled", metrics: true, sampler: sdktrace.AlwaysSample(), parent: true},
}

// barPair starts an echo server and a client observed as s says, and the
// context to call in.
func barPair(tb testing.TB, s barSetup) (*arbor.Client, context.Context) {
	tb.Helper()
	var obs []conn.Observer
	var m *metrics.Metrics
	if s.metrics {
		var err error
		if m, err = metrics.New(prometheus.NewRegistry(), metrics.Options{}); err != nil {
			tb.Fatal(err)
		}
		obs = append(obs, m.Observer())
	}
	if s.nop {
		obs = append(obs, nopObserver{})
	}
	ctx := context.Background()
	if s.sampler != nil {
		// The exporter drops what it gets: sampled spans cost what their
		// recording and ending cost, not an exporter's I/O.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s.sampler), sdktrace.WithSyncer(discard{}))
		tb.Cleanup(func() { tp.Shutdown(context.Background()) })
		obs = append(obs, arborotel.New(arborotel.Config{TracerProvider: tp}).Observer())
		if s.parent {
			c, sp := tp.Tracer("bench").Start(ctx, "load")
			tb.Cleanup(func() { sp.End() })
			ctx = c
		}
	}
	srv := arbor.NewServer(arbor.WithObserver(obs...))
	if m != nil {
		m.WatchServer(srv)
	}
	if err := arbor.Handle1(srv, "echo", func(ctx context.Context, p []byte) ([]byte, error) { return p, nil }); err != nil {
		tb.Fatal(err)
	}
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := arbor.Dial(context.Background(), l.URL(), arbor.WithObserver(obs...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); srv.Close() })
	return c, ctx
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) ConnOpened(*conn.Conn)                                             {}
func (nopObserver) ConnClosed(*conn.Conn, error)                                      {}
func (nopObserver) CallStarted(ctx context.Context, _ *conn.CallInfo) context.Context { return ctx }
func (nopObserver) CallEnded(context.Context, *conn.CallInfo, error)                  {}
func (nopObserver) FlowStalled(*conn.Conn, time.Duration)                             {}
func (nopObserver) GoAway(*conn.Conn, bool, uint32, string)                           {}

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkObservabilityBar is 64-byte echoes from 64 goroutines over one
// TCP connection (client and server in this process, allocations counted
// for both), for each setup of barSetups.
func BenchmarkObservabilityBar(b *testing.B) {
	for _, s := range barSetups {
		b.Run(s.name, func(b *testing.B) {
			c, ctx := barPair(b, s)
			in := bytes.Repeat([]byte{7}, 64)
			for range 100 {
				arbor.Call1[[]byte](ctx, c, "echo", in)
			}
			b.ReportAllocs()
			b.SetParallelism(32) // 64 callers on 2 cores
			cpu0 := cpuTime()
			r0, w0 := sysIO()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out, err := arbor.Call1[[]byte](ctx, c, "echo", in); err != nil || len(out) != 64 {
						b.Errorf("echo: %v", err)
						return
					}
				}
			})
			b.StopTimer()
			// CPU time per call (process user+system): what calls/s is
			// bound by on a dedicated machine, and steadier than wall time
			// on a shared one.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			r1, w1 := sysIO()
			b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/op")
			b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/op")
		})
	}
}

// allocBudget is the allocations per call (client and server together)
// each setup may cost over both off: what they cost now (with this SDK),
// under the bar's 2 for metrics and unsampled tracing, so that they do
// not creep back up. Unsampled tracing costs none: the traceparent is
// cached on the client, its parse shared on the server (a connection's
// wire.MetadataCache) and the span standing for the caller's kept in the
// call's own context (CallInfo.WithValue). The roots' 5: the client's
// non-recording span (the SDK's) and its context, the traceparent sent
// and its parse on the server (a new one each call), the span that
// stands for the caller's on the server.
var allocBudget = map[string]float64{
	"metrics":                         0,
	"metrics+tracing-unsampled":       0,
	"metrics+tracing-unsampled-roots": 5,
	"metrics+tracing-sampled":         22, // 2 of them: the server span's start at the call's arrival
}

// TestObservabilityAllocs holds the allocation part of the bar: metrics
// on and tracing on but unsampled cost at most 2 allocations per call
// (client and server together) over both off; and the budgets of the
// other setups (allocBudget).
func TestObservabilityAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	in := bytes.Repeat([]byte{7}, 64)
	count := func(s barSetup) float64 {
		c, ctx := barPair(t, s)
		echo := func() {
			if _, err := arbor.Call1[[]byte](ctx, c, "echo", in); err != nil {
				t.Fatal(err)
			}
		}
		for range 100 {
			echo()
		}
		return testing.AllocsPerRun(2000, echo)
	}
	off := count(barSetups[0])
	for _, s := range barSetups[1:] {
		got := count(s)
		t.Logf("%-32s %.2f allocations per echo (off: %.2f, +%.2f)", s.name, got, off, got-off)
		if limit, ok := allocBudget[s.name]; ok && got-off > limit+0.05 {
			t.Errorf("%s costs %.2f allocations per call over off, want at most %v", s.name, got-off, limit)
		}
	}
}

// sysIO is the process's read and write system calls so far (Linux's
// /proc/self/io; zero elsewhere): how well a setup batches its frames,
// which decides much of its CPU per call.
func sysIO() (r, w int64) {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			r, _ = strconv.ParseInt(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(l, "syscw: "); ok {
			w, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return
}
