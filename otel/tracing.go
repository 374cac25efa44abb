package arborotel

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

var bg = context.Background()

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/arbor-rpc/arbor/otel"

// Config configures Tracing. The zero value uses OpenTelemetry's global
// tracer provider and W3C trace context.
type Config struct {
	// TracerProvider makes the tracer (default otel.GetTracerProvider()).
	TracerProvider trace.TracerProvider
	// Propagator carries trace context in metadata (default
	// propagation.TraceContext{}: traceparent and tracestate). The
	// default has a fast path of its own (unsampled calls cost no
	// allocation); any other (B3, W3C with baggage composed, a vendor's)
	// injects and extracts every call's metadata itself, sampled or not.
	Propagator propagation.TextMapPropagator
}

// Tracing makes the spans of Arbor calls and request trees.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	w3c    bool // prop is W3C trace context: inject and extract it directly
	mds    mdCache
	last   atomic.Pointer[mdEntry] // the metadata of the last call sent under an unsampled parent
	spans  spanCache
	names  nameCache
}

// The span start options, made once with the slice that passes them: an
// option is an interface value, and the variadic slice of an interface
// method's call escapes, so making either per call costs an allocation.
var (
	clientKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	serverKind = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
)

// New returns a Tracing.
func New(cfg Config) *Tracing {
	tp := cfg.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	prop := cfg.Propagator
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	_, w3c := prop.(propagation.TraceContext)
	return &Tracing{tracer: tp.Tracer(ScopeName), prop: prop, w3c: w3c}
}

// Attribute keys of the spans, after OpenTelemetry's RPC conventions
// where they have one.
const (
	AttrSystem    = attribute.Key("rpc.system")  // "arbor"
	AttrMethod    = attribute.Key("rpc.method")  // the function id or method name
	AttrService   = attribute.Key("rpc.service") // the service of a capability's method
	AttrCode      = attribute.Key("rpc.arbor.code")
	AttrSentBytes = attribute.Key("rpc.arbor.sent_bytes")
	AttrRecvBytes = attribute.Key("rpc.arbor.received_bytes")
	AttrKind      = attribute.Key("rpc.arbor.kind") // unary, async, stream

	AttrTreePath  = attribute.Key("arbor.tree.path")  // "request", "args.tuple_element0", …
	AttrTreeLevel = attribute.Key("arbor.tree.level") // none, mem, full, mem_vb, full_vb
	AttrCacheHit  = attribute.Key("arbor.cache.hit")  // true: the result came from a cache
	AttrCacheTier = attribute.Key("arbor.cache.tier") // memory, disk, redis: the tier that answered
	AttrJoined    = attribute.Key("arbor.singleflight.joined")
)

// mdCarrier is metadata as a propagation carrier.
type mdCarrier struct{ md *[]wire.MD }

func (c mdCarrier) Get(key string) string {
	for _, p := range *c.md {
		if strings.EqualFold(p.Key, key) {
			return p.Value
		}
	}
	return ""
}

func (c mdCarrier) Set(key, value string) {
	md := *c.md
	for i, p := range md {
		if strings.EqualFold(p.Key, key) {
			out := append([]wire.MD(nil), md...)
			out[i].Value = value
			*c.md = out
			return
		}
	}
	*c.md = append(md[:len(md):len(md)], wire.MD{Key: key, Value: value}) // never into the caller's array
}

func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(*c.md))
	for _, p := range *c.md {
		keys = append(keys, p.Key)
	}
	return keys
}

// outgoing decides the span of a call this side makes under ctx and the
// metadata that carries its context, and the span it started. It starts
// no span under an unsampled parent (span nil): the parent's context
// travels instead. attrs
// gets the span's name (the function id, copied) and is called only for a
// span that records.
func (t *Tracing) outgoing(ctx context.Context, name string, md []wire.MD, attrs func(name string) []attribute.KeyValue) (context.Context, []wire.MD, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	// The caches below hold traceparents alone: only for W3C trace
	// context on its own (another propagator writes keys of its own, and
	// one beside W3C, baggage say, writes more than the span's context).
	if t.w3c && len(md) == 0 {
		// The calls of one request, or of a load under one span, share
		// their parent: its metadata is the last call's, without
		// reading its span context again. (A span's context never
		// changes, nor does a non-recording span start recording.)
		if e := t.last.Load(); e != nil && sameSpan(e.span, parent) {
			return ctx, e.md[:], nil
		}
	}
	psc := parent.SpanContext()
	if psc.IsValid() && !psc.IsSampled() && !parent.IsRecording() {
		if t.w3c && len(md) == 0 && psc.TraceState().Len() == 0 {
			e := t.mds.entry(psc, parent)
			if sameSpan(e.span, parent) {
				t.last.Store(e)
			}
			return ctx, e.md[:], nil
		}
		return ctx, t.inject(ctx, psc, md), nil
	}
	name = t.names.intern(name)
	ctx, span := t.tracer.Start(ctx, name, clientKind...)
	if span.IsRecording() {
		span.SetAttributes(attrs(name)...)
	}
	// Another propagator is asked even without a span context: what it
	// carries besides (baggage) travels anyway.
	if sc := span.SpanContext(); sc.IsValid() || !t.w3c {
		if t.w3c && len(md) == 0 && sc.TraceState().Len() == 0 && !sc.IsSampled() {
			md = t.mds.entry(sc, nil).md[:]
		} else {
			md = t.inject(ctx, sc, md)
		}
	}
	return ctx, md, span
}

// inject returns md with ctx's trace context (sc) added by the
// propagator: for W3C trace context, directly, unless md already has its
// keys (the propagator replaces them then).
func (t *Tracing) inject(ctx context.Context, sc trace.SpanContext, md []wire.MD) []wire.MD {
	if t.w3c && !hasTraceKeys(md) {
		if ts := sc.TraceState(); ts.Len() > 0 {
			return append(md[:len(md):len(md)], wire.MD{Key: TracestateKey, Value: ts.String()}, wire.MD{Key: TraceparentKey, Value: formatTraceparent(sc)})
		}
		if len(md) == 0 {
			return traceparentOnly(sc)
		}
		return append(md[:len(md):len(md)], wire.MD{Key: TraceparentKey, Value: formatTraceparent(sc)})
	}
	out := md // its own variable: only the slow path's escapes
	t.prop.Inject(ctx, mdCarrier{&out})
	return out
}

// hasTraceKeys reports whether md has a key of W3C trace context, in any
// case (as the propagator's carrier matches them).
func hasTraceKeys(md []wire.MD) bool {
	for _, p := range md {
		if strings.EqualFold(p.Key, TraceparentKey) || strings.EqualFold(p.Key, TracestateKey) {
			return true
		}
	}
	return false
}

// extract returns ctx with the trace context in md; for W3C trace
// context, tp and ts are its traceparent and tracestate (exact keys), tp
// not empty.
func (t *Tracing) extract(ctx context.Context, md []wire.MD, tp, ts string) context.Context {
	if t.w3c {
		// What propagation.TraceContext does, without its carrier's
		// allocation; anything this parser refuses goes to it.
		if cfg, ok := parseTraceparent(tp); ok {
			cfg.TraceState, _ = trace.ParseTraceState(ts) // a bad tracestate must not affect traceparent (W3C)
			return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg))
		}
	}
	in := md
	return t.prop.Extract(ctx, mdCarrier{&in})
}

// nameCache interns the span names (function ids, which the observer
// gets in buffers that are reused): a span of a function seen before
// costs no copy of its name. Direct-mapped, so bounded; a miss copies as
// strings.Clone would.
type nameCache struct {
	slots [64]atomic.Pointer[string]
}

func (c *nameCache) intern(s string) string {
	h := uint(len(s))
	if len(s) > 0 {
		h = h*31 + uint(s[0])
		h = h*31 + uint(s[len(s)-1])
		h = h*31 + uint(s[len(s)/2])
	}
	slot := &c.slots[h%uint(len(c.slots))]
	if p := slot.Load(); p != nil && *p == s {
		return *p
	}
	cp := strings.Clone(s)
	slot.Store(&cp)
	return cp
}

// traceKeys returns md's traceparent (exact key) and tracestate (in any
// case, as the propagator's carrier finds it), the first of each, in one
// pass.
func traceKeys(md []wire.MD) (tp, ts string) {
	var tsSeen bool
	for _, p := range md {
		switch {
		case tp == "" && p.Key == TraceparentKey:
			tp = p.Value
		case !tsSeen && len(p.Key) == len(TracestateKey) && strings.EqualFold(p.Key, TracestateKey):
			ts, tsSeen = p.Value, true
		}
	}
	return tp, ts
}

// incoming decides the span of a call this side serves, with the
// caller's metadata (inProcess: ctx may already be in a trace, whose span
// is then the parent; a connection's handler context never is), and
// returns the handler's context and the span started. Under an unsampled
// remote parent it starts no span (nil) and hands the handler the
// parent's context, so that the handler's own calls stay in the
// (unsampled) trace.
func (t *Tracing) incoming(ctx context.Context, info *conn.CallInfo, inProcess bool, name string, md []wire.MD, attrs func(name string) []attribute.KeyValue) (context.Context, trace.Span) {
	if inProcess && trace.SpanFromContext(ctx).SpanContext().IsValid() {
		// Already in a trace (a request tree's function run in process):
		// a child of that.
		return t.startServer(ctx, name, attrs, serverKind...)
	}
	if !t.w3c {
		// Another propagator reads the metadata itself (and may bring
		// more than a span context: baggage).
		ctx = t.extract(ctx, md, "", "")
		if psc := trace.SpanContextFromContext(ctx); psc.IsValid() {
			if !psc.IsSampled() {
				return ctx, nil // the caller's unsampled context, as below
			}
			return t.startRemoteChild(ctx, info, name, attrs)
		}
		return t.startServer(ctx, name, attrs, serverKind...)
	}
	if tp, ts := traceKeys(md); tp != "" {
		if ts == "" {
			if span, ok := t.spans.lookup(tp); ok {
				return withSpan(ctx, info, span), nil // an unsampled parent seen before
			}
		}
		if cfg, ok := parseTraceparent(tp); ok && !cfg.TraceFlags.IsSampled() {
			if ts == "" {
				return withSpan(ctx, info, t.spans.span(tp, cfg)), nil
			}
			return t.extract(ctx, md, tp, ts), nil
		}
		// A sampled parent (or one that did not parse: a new root).
		return t.startRemoteChild(t.extract(ctx, md, tp, ts), info, name, attrs)
	}
	return t.startServer(ctx, name, attrs, serverKind...)
}

// startRemoteChild starts the span of a call served under a sampled
// remote parent (in ctx). For a call a connection serves (info not nil)
// the span starts when the call's frame arrived, as the server's metrics
// count it. Only here, where the span is likely recorded, are the two
// allocations worth it. The time is now less the wait, not info.Start
// itself, whose wall reading a step of the clock since the process
// started would move against the span's end.
func (t *Tracing) startRemoteChild(ctx context.Context, info *conn.CallInfo, name string, attrs func(name string) []attribute.KeyValue) (context.Context, trace.Span) {
	if info == nil {
		return t.startServer(ctx, name, attrs, serverKind...)
	}
	arrived := time.Now().Add(-time.Since(info.Start))
	return t.startServer(ctx, name, attrs, serverKind[0], trace.WithTimestamp(arrived))
}

// withSpan is trace.ContextWithSpan, in the call's own context when the
// call is one a connection serves (info not nil): no allocation.
func withSpan(ctx context.Context, info *conn.CallInfo, span trace.Span) context.Context {
	if info == nil || spanKey == nil {
		return trace.ContextWithSpan(ctx, span)
	}
	return info.WithValue(ctx, spanKey, span)
}

// spanKey is the context key under which OpenTelemetry keeps the current
// span (unexported there): the key trace.SpanFromContext asks a context
// for. Binding a span under it is what trace.ContextWithSpan does.
var spanKey = func() any {
	var p keyProbe
	trace.SpanFromContext(&p)
	return p.key
}()

// keyProbe is a context that records the key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(key any) any {
	p.key = key
	return nil
}

func (t *Tracing) startServer(ctx context.Context, name string, attrs func(name string) []attribute.KeyValue, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	name = t.names.intern(name)
	ctx, span := t.tracer.Start(ctx, name, opts...)
	if span.IsRecording() {
		span.SetAttributes(attrs(name)...)
	}
	return ctx, span
}

// end ends span, the one a call started (nil: none), with the call's
// outcome, if it records.
func end(span trace.Span, err error, sent, recv int64) {
	if span == nil || !span.IsRecording() {
		return
	}
	code := arbor.OK
	if err != nil {
		var ae *arbor.Error
		if e, ok := err.(*arbor.Error); ok {
			ae = e
		}
		if ae != nil {
			code = ae.Code
		} else {
			code = arbor.CodeOf(err)
		}
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(AttrCode.String(code.String()), AttrSentBytes.Int64(sent), AttrRecvBytes.Int64(recv))
	span.End()
}
