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
	unsampledParent := trace.ParentBased(trace.NeverSample())
	obsSetups = []obsSetup{
		{name: "off", note: "no observer", start: obsPair(obsConfig{})},
		{name: "metrics", note: "metrics.New on its own registry, Observer on server and client", start: obsPair(obsConfig{metrics: true})},
		{name: "metrics+tracing-unsampled", note: "and arborotel's Observer on both, the calls made under an unsampled span (ParentBased(NeverSample)): traceparent carried, no span recorded",
			start: obsPair(obsConfig{metrics: true, sampler: unsampledParent, parent: true})},
		{name: "metrics+tracing-sampled", note: "the same under a sampled span (AlwaysSample): two spans recorded per call, exported to an exporter that drops them",
			start: obsPair(obsConfig{metrics: true, sampler: trace.AlwaysSample(), parent: true})},
		// Diagnostics. Which end's observers cost what: the server's run
		// on the connection's reader (inline calls), the client's on the
		// callers. And what unsampled tracing's traceparent costs as
		// bytes alone, without the tracing observer.
		{name: "metrics-server", note: "metrics on the server only", start: obsPair(obsConfig{metrics: true, sides: serverSide}), onlyNamed: true},
		{name: "metrics-client", note: "metrics on the client only", start: obsPair(obsConfig{metrics: true, sides: clientSide}), onlyNamed: true},
		{name: "metrics+traceparent-bytes", note: "metrics on both, every call carrying an unsampled traceparent as plain metadata (arbor.WithMetadata), no tracing observer",
			start: obsPair(obsConfig{metrics: true, md: []string{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}), onlyNamed: true},
	}
}

// obsConfig is how one echo pair of the obs section is observed.
type obsConfig struct {
	metrics bool
	sampler trace.Sampler // nil: no tracing
	parent  bool          // the calls run under a span of the sampler's
	sides   obsSides
	md      []string // metadata every call carries (key, value, ...)
}

// obsSides says which end of an observed pair has the observers.
type obsSides uint8

const (
	bothSides obsSides = iota
	serverSide
	clientSide
)

// obsPair starts an echo server and a client observed so.
func obsPair(cfg obsConfig) func(context.Context) (func(context.Context) error, func(), error) {
	return func(ctx context.Context) (func(context.Context) error, func(), error) {
		obs, m, callCtx, stopObs, err := observers(cfg.metrics, cfg.sampler, cfg.parent)
		if err != nil {
			return nil, nil, err
		}
		if len(cfg.md) > 0 {
			callCtx = arbor.WithMetadata(callCtx, cfg.md...)
		}
		sobs, cobs := obs, obs
		switch cfg.sides {
		case serverSide:
			cobs = nil
		case clientSide:
			sobs = nil
		}
		url, stopSrv, err := serveEcho(ctx, sobs, m)
		if err != nil {
			stopObs()
			return nil, nil, err
		}
		c, err := arbor.Dial(ctx, url, arbor.WithObserver(cobs...))
		if err != nil {
			stopSrv()
			stopObs()
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
		return op, func() { c.Close(); stopSrv(); stopObs() }, nil
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

// observers returns a setup's observers (metrics when withMetrics,
// tracing with sampler when it is not nil), the context its calls run in
// (under a span when parent), and what stops them.
func observers(withMetrics bool, sampler trace.Sampler, parent bool) ([]conn.Observer, *metrics.Metrics, context.Context, func(), error) {
	var obs []conn.Observer
	var m *metrics.Metrics
	if withMetrics {
		var err error
		if m, err = metrics.New(prometheus.NewRegistry(), metrics.Options{}); err != nil {
			return nil, nil, nil, nil, err
		}
		obs = append(obs, m.Observer())
	}
	ctx, stop := context.Background(), func() {}
	if sampler != nil {
		tp := trace.NewTracerProvider(trace.WithSampler(sampler), trace.WithSyncer(dropSpans{}))
		obs = append(obs, arborotel.New(arborotel.Config{TracerProvider: tp}).Observer())
		stop = func() { tp.Shutdown(context.Background()) }
		if parent {
			c, sp := tp.Tracer("bench").Start(ctx, "load")
			ctx, stop = c, func() { sp.End(); tp.Shutdown(context.Background()) }
		}
	}
	return obs, m, ctx, stop, nil
}

// unsampled is arbor-obs's setup: metrics and tracing, the calls under an
// unsampled span.
func unsampled() ([]conn.Observer, *metrics.Metrics, context.Context, func(), error) {
	return observers(true, trace.ParentBased(trace.NeverSample()), true)
}

// serveEcho serves the echo observed by obs (m, if not nil, watching the
// server) and returns its URL and what stops it.
func serveEcho(ctx context.Context, obs []conn.Observer, m *metrics.Metrics) (string, func(), error) {
	srv := arbor.NewServer(arbor.WithObserver(obs...))
	if m != nil {
		m.WatchServer(srv)
	}
	arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	return l.URL(), func() { srv.Close() }, nil
}

func serveArborObserved(ctx context.Context) (string, func(), error) {
	obs, m, _, stopObs, err := unsampled()
	if err != nil {
		return "", nil, err
	}
	url, stop, err := serveEcho(ctx, obs, m)
	if err != nil {
		stopObs()
		return "", nil, err
	}
	return url, func() { stop(); stopObs() }, nil
}

func dialArborObserved(ctx context.Context, url string) (Runner, error) {
	obs, _, callCtx, stopObs, err := unsampled()
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
