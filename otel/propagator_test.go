package arborotel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbor-rpc/arbor"
	arborotel "github.com/arbor-rpc/arbor/otel"
)

// testPropagator carries a span context under a key of its own, as B3 or
// a vendor's propagator does: none of W3C's keys.
type testPropagator struct{}

const testKey = "x-test-trace"

func (testPropagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	c.Set(testKey, fmt.Sprintf("%s:%s:%t", sc.TraceID(), sc.SpanID(), sc.IsSampled()))
}

func (testPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	parts := strings.Split(c.Get(testKey), ":")
	if len(parts) != 3 {
		return ctx
	}
	tid, err1 := trace.TraceIDFromHex(parts[0])
	sid, err2 := trace.SpanIDFromHex(parts[1])
	if err1 != nil || err2 != nil {
		return ctx
	}
	var flags trace.TraceFlags
	if parts[2] == "true" {
		flags = trace.FlagsSampled
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}))
}

func (testPropagator) Fields() []string { return []string{testKey} }

// propagatedPair is a client and a server traced with propagator prop,
// the client's sampler never sampling roots; the server's handler "see"
// returns what its context holds: the span context's trace and span ids,
// whether it is sampled, the baggage member "tenant" (or nothing), and
// the metadata keys the call carried.
func propagatedPair(t *testing.T, prop propagation.TextMapPropagator) (*arbor.Client, *process, *process) {
	t.Helper()
	mk := func(s sdktrace.Sampler) *process {
		p := newProcess(t, s)
		p.tr = arborotel.New(arborotel.Config{TracerProvider: p.tp, Propagator: prop})
		return p
	}
	client, server := mk(sdktrace.ParentBased(sdktrace.NeverSample())), mk(sdktrace.ParentBased(sdktrace.NeverSample()))
	addr := serve(t, server, func(s *arbor.Server) {
		arbor.Handle0(s, "see", func(ctx context.Context) (string, error) {
			sc := trace.SpanContextFromContext(ctx)
			md := arbor.IncomingMetadata(ctx)
			keys := make([]string, 0, len(md))
			for _, p := range md {
				keys = append(keys, p.Key)
			}
			return fmt.Sprintf("%s %s %t %s keys=%s", sc.TraceID(), sc.SpanID(), sc.IsSampled(), baggage.FromContext(ctx).Member("tenant").Value(), strings.Join(keys, ",")), nil
		})
	})
	return dial(t, client, addr), client, server
}

// Trace context travels by the configured propagator, not only by W3C's
// traceparent: under a sampled parent the server's span is the client
// span's child, under an unsampled one the handler runs in the caller's
// (remote, unsampled) span context and nothing is recorded.
func TestOtherPropagatorsJoinTraces(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		t.Run(fmt.Sprint("sampled=", sampled), func(t *testing.T) {
			c, client, server := propagatedPair(t, testPropagator{})
			sampler := sdktrace.NeverSample()
			if sampled {
				sampler = sdktrace.AlwaysSample()
			}
			// The root's own provider decides its sampling; the calls
			// under it follow their parent.
			rootTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))
			defer rootTP.Shutdown(context.Background())
			for i := range 3 { // the first call and ones after it (the client's caches)
				ctx, root := rootTP.Tracer("test").Start(testContext(t), "root")
				got, err := arbor.Call0[string](ctx, c, "see")
				root.End()
				if err != nil {
					t.Fatal(err)
				}
				f := strings.Fields(got)
				rsc := root.SpanContext()
				if f[0] != rsc.TraceID().String() {
					t.Fatalf("call %d: the handler is in trace %s, want the caller's %s (the propagator's key was not used)", i, f[0], rsc.TraceID())
				}
				if f[2] != fmt.Sprint(sampled) {
					t.Errorf("call %d: the handler's span context is sampled=%s, want %t", i, f[2], sampled)
				}
				if !sampled && f[1] != rsc.SpanID().String() {
					t.Errorf("call %d: unsampled, the handler runs in span %s, want the caller's %s", i, f[1], rsc.SpanID())
				}
				if keys := f[len(f)-1]; keys != "keys="+testKey {
					t.Errorf("call %d: the call carried %s, want only the propagator's %s", i, keys, testKey)
				}
			}
			cs, ss := client.exp.GetSpans(), server.exp.GetSpans()
			if !sampled {
				if len(cs)+len(ss) != 0 {
					t.Errorf("%d client and %d server spans recorded under unsampled parents", len(cs), len(ss))
				}
				return
			}
			if len(cs) != 3 || len(ss) != 3 {
				t.Fatalf("%d client and %d server spans, want 3 and 3", len(cs), len(ss))
			}
			for i := range ss {
				if ss[i].Parent.SpanID() != cs[i].SpanContext.SpanID() || !ss[i].Parent.IsRemote() {
					t.Errorf("server span %d's parent is %s (remote %t), want the client span %s", i, ss[i].Parent.SpanID(), ss[i].Parent.IsRemote(), cs[i].SpanContext.SpanID())
				}
			}
		})
	}
}

// With W3C trace context and baggage composed, baggage crosses with every
// call, sampled or not.
func TestBaggageCrossesWithTraceContext(t *testing.T) {
	prop := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	c, _, _ := propagatedPair(t, prop)
	m, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(m)
	for _, sampled := range []bool{true, false} {
		sampler := sdktrace.NeverSample()
		if sampled {
			sampler = sdktrace.AlwaysSample()
		}
		rootTP := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler))
		for i := range 2 {
			ctx, root := rootTP.Tracer("test").Start(baggage.ContextWithBaggage(testContext(t), bag), "root")
			got, err := arbor.Call0[string](ctx, c, "see")
			root.End()
			if err != nil {
				t.Fatal(err)
			}
			f := strings.Fields(got)
			if len(f) != 5 || f[3] != "acme" {
				t.Errorf("sampled=%t, call %d: the handler saw %q, want baggage tenant=acme", sampled, i, got)
			}
			if f[0] != root.SpanContext().TraceID().String() {
				t.Errorf("sampled=%t, call %d: the handler is in trace %s, want %s", sampled, i, f[0], root.SpanContext().TraceID())
			}
		}
		rootTP.Shutdown(context.Background())
	}
	// Without a span, baggage alone crosses too.
	got, err := arbor.Call0[string](baggage.ContextWithBaggage(testContext(t), bag), c, "see")
	if err != nil || !strings.Contains(got, " acme ") {
		t.Errorf("baggage without a span: the handler saw %q (%v), want tenant=acme", got, err)
	}
}
