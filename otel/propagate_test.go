package arborotel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbor-rpc/arbor"
	arborotel "github.com/arbor-rpc/arbor/otel"
)

// A trace's decision and state cross two real servers: client → hop
// (which calls) → leaf. Unsampled, the traceparent reaching the leaf is
// the caller's with flags 00 (so that the leaf, whose sampler would record
// a root, honours the decision) and nothing is recorded anywhere; sampled,
// it is the hop's client span's with flags 01 and every process records.
// The tracestate travels either way.
func TestTraceDecisionCrossesTwoServers(t *testing.T) {
	for _, tc := range []struct {
		sampled bool
		state   string
	}{{false, ""}, {false, "vendor=x,other=y"}, {true, ""}, {true, "vendor=x"}} {
		t.Run(fmt.Sprintf("sampled=%v,tracestate=%q", tc.sampled, tc.state), func(t *testing.T) {
			// The client follows its parent; the servers would record
			// every root they start, so a decision lost on the way shows
			// as spans.
			client := newProcess(t, sdktrace.ParentBased(sdktrace.NeverSample()))
			mid := newProcess(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
			far := newProcess(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
			type seen struct {
				tp, ts string
				sc     trace.SpanContext
			}
			got := make(chan seen, 1)
			leafAddr := serve(t, far, func(s *arbor.Server) {
				arbor.Handle1(s, "leaf", func(ctx context.Context, n int) (int, error) {
					md := arbor.IncomingMetadata(ctx)
					got <- seen{md.Get(arborotel.TraceparentKey), md.Get(arborotel.TracestateKey), trace.SpanContextFromContext(ctx)}
					return n + 1, nil
				})
			})
			var toLeaf *arbor.Client
			hopAddr := serve(t, mid, func(s *arbor.Server) {
				arbor.Handle1(s, "hop", func(ctx context.Context, n int) (int, error) {
					return arbor.Call1[int](ctx, toLeaf, "leaf", n)
				})
			})
			toLeaf = dial(t, mid, leafAddr)
			c := dial(t, client, hopAddr)

			ts, err := trace.ParseTraceState(tc.state)
			if err != nil {
				t.Fatal(err)
			}
			cfg := trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceState: ts, Remote: true}
			if tc.sampled {
				cfg.TraceFlags = trace.FlagsSampled
			}
			parent := trace.NewSpanContext(cfg)
			ctx := trace.ContextWithRemoteSpanContext(testContext(t), parent)
			for range 3 { // the later calls take the cached paths
				if n, err := arbor.Call1[int](ctx, c, "hop", 1); err != nil || n != 2 {
					t.Fatalf("hop: %v %v", n, err)
				}
				s := <-got
				if s.sc.TraceID() != parent.TraceID() || s.sc.IsSampled() != tc.sampled || s.sc.TraceState().String() != tc.state {
					t.Errorf("the leaf's handler runs in %v (sampled %v, tracestate %q), want trace %v sampled %v tracestate %q",
						s.sc.TraceID(), s.sc.IsSampled(), s.sc.TraceState().String(), parent.TraceID(), tc.sampled, tc.state)
				}
				if s.ts != tc.state {
					t.Errorf("tracestate %q reached the leaf, want %q", s.ts, tc.state)
				}
				if !tc.sampled {
					if want := fmt.Sprintf("00-%s-%s-00", parent.TraceID(), parent.SpanID()); s.tp != want {
						t.Errorf("traceparent %q reached the leaf, want the caller's unsampled %q", s.tp, want)
					}
				} else if !strings.HasPrefix(s.tp, "00-"+parent.TraceID().String()+"-") || !strings.HasSuffix(s.tp, "-01") {
					t.Errorf("traceparent %q reached the leaf, want trace %s sampled", s.tp, parent.TraceID())
				}
			}
			n := [3]int{len(client.exp.GetSpans()), len(mid.exp.GetSpans()), len(far.exp.GetSpans())}
			want := [3]int{}
			if tc.sampled {
				want = [3]int{3, 6, 3} // per call: client's hop; hop's server and leaf client; leaf's server
			}
			if n != want {
				t.Errorf("spans recorded (client, hop, leaf) = %v, want %v", n, want)
			}
			if tc.sampled {
				for _, s := range far.exp.GetSpans() {
					if s.SpanContext.TraceState().String() != tc.state || s.SpanContext.TraceID() != parent.TraceID() {
						t.Errorf("the leaf's span is in %v with tracestate %q", s.SpanContext.TraceID(), s.SpanContext.TraceState().String())
					}
				}
			}
		})
	}
}

// A traceparent already in a call's metadata, in any case, is replaced by
// the call's own, not sent twice. (A stale tracestate stays when the span
// has none: propagation.TraceContext sets only what the span has.)
func TestTraceKeysInMetadataAreReplaced(t *testing.T) {
	p := newProcess(t, sdktrace.AlwaysSample())
	var sent []arbor.Pair
	caller := arbor.CallFunc(func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
		sent = req.Metadata
		return &arbor.Response{Result: []byte{0x01}}, nil
	})
	ctx, root := p.tp.Tracer("test").Start(testContext(t), "root")
	defer root.End()
	for _, key := range []string{"traceparent", "Traceparent", "TRACEPARENT"} {
		if _, err := arbor.Call0[int](arbor.WithMetadata(ctx, "x-other", "1", key, "stale"), p.tr.ClientInterceptor()(caller), "far"); err != nil {
			t.Fatal(err)
		}
		var tps int
		for _, kv := range sent {
			if strings.EqualFold(kv.Key, arborotel.TraceparentKey) {
				tps++
				if !strings.HasPrefix(kv.Value, "00-"+root.SpanContext().TraceID().String()) {
					t.Errorf("%s: traceparent %q", key, kv.Value)
				}
			}
			if kv.Value == "stale" {
				t.Errorf("%s: the stale value was sent: %v", key, sent)
			}
		}
		if tps != 1 || arbor.Metadata(sent).Get("x-other") != "1" {
			t.Errorf("%s: sent %v, want one traceparent and x-other", key, sent)
		}
	}
}

// A server reads the traceparent under its exact key, the first if there
// are several, and the tracestate under its key in any case, as
// propagation.TraceContext's carrier would.
func TestIncomingTraceKeys(t *testing.T) {
	p := newProcess(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	srv := arbor.NewServer(arbor.WithInterceptors(p.tr.ServerInterceptor()))
	defer srv.Close()
	seen := make(chan trace.SpanContext, 1)
	arbor.Handle0(srv, "where", func(ctx context.Context) (int, error) {
		seen <- trace.SpanContextFromContext(ctx)
		return 1, nil
	})
	const first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const second = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
	for _, sampled := range []bool{true, false} {
		tp1, tp2 := first, second
		if !sampled {
			tp1, tp2 = first[:53]+"00", second[:53]+"00"
		}
		md := arbor.Metadata{{Key: "traceparent", Value: tp1}, {Key: "TraceState", Value: "k=v"}, {Key: "traceparent", Value: tp2}, {Key: "tracestate", Value: "x=y"}}
		if _, err := srv.Invoke(arbor.InboundContext(testContext(t), md, arbor.Peer{}), "where", []byte{0x90}); err != nil {
			t.Fatal(err)
		}
		got := <-seen
		if got.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || got.TraceState().String() != "k=v" || got.IsSampled() != sampled {
			t.Errorf("sampled %v: the handler runs in trace %s, tracestate %q, sampled %v; want the first traceparent's and k=v",
				sampled, got.TraceID(), got.TraceState().String(), got.IsSampled())
		}
	}
}
