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

// arbor-obs is the procs section's observed Arbor: the server in its
// child process and the client here each observed by metrics and
// unsampled tracing (the client's calls made under an unsampled span), so
// that each side's observers cost on its own core, as in a deployment.
func init() {
	registerRemote(remoteSystem{name: "arbor-obs", serve: serveArborObserved, dial: dialArborObserved})
}

// observers returns metrics and unsampled-tracing observers, a context
// under an unsampled span, and what stops them.
func observers() ([]conn.Observer, *metrics.Metrics, context.Context, func(), error) {
	m, err := metrics.New(prometheus.NewRegistry(), metrics.Options{})
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tp := trace.NewTracerProvider(trace.WithSampler(trace.ParentBased(trace.NeverSample())), trace.WithSyncer(dropSpans{}))
	ctx, sp := tp.Tracer("bench").Start(context.Background(), "load")
	stop := func() { sp.End(); tp.Shutdown(context.Background()) }
	return []conn.Observer{m.Observer(), arborotel.New(arborotel.Config{TracerProvider: tp}).Observer()}, m, ctx, stop, nil
}

func serveArborObserved(ctx context.Context) (string, func(), error) {
	obs, m, _, stopObs, err := observers()
	if err != nil {
		return "", nil, err
	}
	srv := arbor.NewServer(arbor.WithObserver(obs...))
	m.WatchServer(srv)
	arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		stopObs()
		return "", nil, err
	}
	return l.URL(), func() { srv.Close(); stopObs() }, nil
}

func dialArborObserved(ctx context.Context, url string) (Runner, error) {
	obs, _, callCtx, stopObs, err := observers()
	if err != nil {
		return nil, err
	}
	c, err := arbor.Dial(ctx, url, arbor.WithObserver(obs...))
	if err != nil {
		stopObs()
		return nil, err
	}
	return &arborRunner{
		// Under the unsampled span, as obsPair's calls (the harness's
		// context carries nothing the call needs).
		call:  func(_ context.Context, p []byte) ([]byte, error) { return arbor.Call1[[]byte](callCtx, c, "echo", p) },
		close: func() error { err := c.Close(); stopObs(); return err },
	}, nil
}
