package metrics_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/metrics"
)

// echoPair is a TCP server with echo and a client, observed by m on both
// sides (nil: not observed).
func echoPair(tb testing.TB, m *metrics.Metrics) *arbor.Client {
	tb.Helper()
	var sopts []arbor.ServerOption
	var copts []arbor.ClientOption
	if m != nil {
		sopts = append(sopts, arbor.WithObserver(m.Observer()))
		copts = append(copts, arbor.WithObserver(m.Observer()))
	}
	srv := arbor.NewServer(sopts...)
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
	c, err := arbor.Dial(context.Background(), l.URL(), copts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

func newMetrics(tb testing.TB) *metrics.Metrics {
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// BenchmarkEchoMetrics is 64-byte echoes from 64 goroutines over one
// connection, with metrics off and on (both sides, one process).
func BenchmarkEchoMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var m *metrics.Metrics
			if on {
				m = newMetrics(b)
			}
			c := echoPair(b, m)
			in := bytes.Repeat([]byte{7}, 64)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(32) // 64 callers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if out, err := arbor.Call1[[]byte](ctx, c, "echo", in); err != nil || len(out) != 64 {
						b.Errorf("echo: %v", err)
						return
					}
				}
			})
		})
	}
}

// Metrics cost no allocation per call: the echo budget holds with them on.
func TestMetricsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	in := bytes.Repeat([]byte{7}, 64)
	ctx := context.Background()
	count := func(m *metrics.Metrics) float64 {
		c := echoPair(t, m)
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
	off, on := count(nil), count(newMetrics(t))
	t.Logf("allocations per echo (client+server): %.2f without metrics, %.2f with", off, on)
	if on > off+0.05 {
		t.Errorf("metrics cost %.2f allocations per call, want none", on-off)
	}
}
