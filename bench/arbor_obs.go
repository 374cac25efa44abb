//go:build !noarbor

package main

import (
	"bytes"
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/trace"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/metrics"
	arborotel "github.com/arbor-rpc/arbor/otel"
)

func init() {
	obsSetups = []obsSetup{
		{name: "off", note: "no observer", start: obsPair(false, nil, false)},
		{name: "metrics", note: "metrics.New on its own registry, Observer on server and client", start: obsPair(true, nil, false)},
		{name: "metrics+tracing-unsampled", note: "and arborotel's Observer on both, the calls made under an unsampled span (ParentBased(NeverSample)): traceparent carried, no span recorded",
			start: obsPair(true, trace.ParentBased(trace.NeverSample()), true)},
		{name: "metrics+tracing-sampled", note: "the same under a sampled span (AlwaysSample): two spans recorded per call, exported to an exporter that drops them",
			start: obsPair(true, trace.AlwaysSample(), true)},
	}
}

// obsPair starts an echo server and a client observed so.
func obsPair(withMetrics bool, sampler trace.Sampler, parent bool) func(context.Context) (func(context.Context) error, func(), error) {
	return func(ctx context.Context) (func(context.Context) error, func(), error) {
		var obs []conn.Observer
		var m *metrics.Metrics
		if withMetrics {
			var err error
			if m, err = metrics.New(prometheus.NewRegistry(), metrics.Options{}); err != nil {
				return nil, nil, err
			}
			obs = append(obs, m.Observer())
		}
		callCtx := context.Background()
		var stops []func()
		if sampler != nil {
			tp := trace.NewTracerProvider(trace.WithSampler(sampler), trace.WithSyncer(dropSpans{}))
			stops = append(stops, func() { tp.Shutdown(context.Background()) })
			obs = append(obs, arborotel.New(arborotel.Config{TracerProvider: tp}).Observer())
			if parent {
				c, sp := tp.Tracer("bench").Start(callCtx, "load")
				stops = append(stops, func() { sp.End() })
				callCtx = c
			}
		}
		srv := arbor.NewServer(arbor.WithObserver(obs...))
		if m != nil {
			m.WatchServer(srv)
		}
		arbor.Handle1(srv, "echo", func(ctx context.Context, p []byte) ([]byte, error) { return p, nil })
		l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		c, err := arbor.Dial(ctx, l.URL(), arbor.WithObserver(obs...))
		if err != nil {
			srv.Close()
			return nil, nil, err
		}
		payload := makePayload(obsPayload)
		op := func(context.Context) error {
			out, err := arbor.Call1[[]byte](callCtx, c, "echo", payload)
			if err != nil {
				return err
			}
			if !bytes.Equal(out, payload) {
				return fmt.Errorf("echo returned %d bytes, not the %d sent", len(out), len(payload))
			}
			return nil
		}
		stop := func() {
			c.Close()
			srv.Close()
			for i := len(stops) - 1; i >= 0; i-- {
				stops[i]()
			}
		}
		return op, stop, nil
	}
}

type dropSpans struct{}

func (dropSpans) ExportSpans(context.Context, []trace.ReadOnlySpan) error { return nil }
func (dropSpans) Shutdown(context.Context) error                          { return nil }
