package arborotel

import (
	"context"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
)

// TreeObserver returns the resolve.Observer that makes a span per
// request of a tree, a child of its parent request's (the root's is a
// child of the call that carried the tree), marked arbor.cache.hit true
// or false for cached levels: a tree is one trace. Pass it as
// tree.Config.Observer. Under an unsampled trace it starts nothing.
func (t *Tracing) TreeObserver() resolve.Observer { return treeObserver{t} }

type treeObserver struct{ t *Tracing }

var internalKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)} // see clientKind

func (treeObserver) TreeStarted(context.Context, bool)      {}
func (treeObserver) TreeEnded(context.Context, bool, error) {}
func (treeObserver) Retried(ctx context.Context, id string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("retry", trace.WithAttributes(AttrMethod.String(id)))
	}
}

func (o treeObserver) NodeStarted(ctx context.Context, n *resolve.NodeInfo) context.Context {
	parent := trace.SpanFromContext(ctx)
	if psc := parent.SpanContext(); psc.IsValid() && !psc.IsSampled() && !parent.IsRecording() {
		return ctx
	}
	ctx, span := o.t.tracer.Start(ctx, n.ID, internalKind...)
	if span.IsRecording() {
		span.SetAttributes(AttrTreePath.String(n.Path), AttrTreeLevel.String(n.Level.String()))
	}
	return ctx
}

func (o treeObserver) NodeEnded(ctx context.Context, n *resolve.NodeInfo, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (o treeObserver) CacheLookup(ctx context.Context, level request.Level, tier string, hit bool) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("cache lookup", trace.WithAttributes(AttrCacheTier.String(tier), AttrCacheHit.Bool(hit)))
	if hit {
		span.SetAttributes(AttrCacheHit.Bool(true), AttrCacheTier.String(tier))
	} else {
		span.SetAttributes(AttrCacheHit.Bool(false))
	}
}

func (o treeObserver) Joined(ctx context.Context, level request.Level) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(AttrJoined.Bool(true))
	}
}
