package arborotel_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
	arborotel "github.com/arbor-rpc/arbor/otel"
)

// forward passes every event to an observer of its own: a filter, say,
// in front of a combination (made with conn.Observers, not flattened into
// the one around it).
type forward struct{ conn.Observer }

// Tracing observers behind a wrapper use the same Keep slots as those
// around it (a combination inside numbers its slots from the first, as
// the metrics test TestWrappedObserversCountTheirOwnCalls has it): each
// still ends the spans it started, once, on both sides.
func TestWrappedTracingObserversEndTheirOwnSpans(t *testing.T) {
	ps := []*process{newProcess(t, sdktrace.AlwaysSample()), newProcess(t, sdktrace.AlwaysSample()), newProcess(t, sdktrace.AlwaysSample())}
	obs := func() []conn.Observer {
		return []conn.Observer{ps[0].tr.Observer(), forward{conn.Observers(ps[1].tr.Observer(), ps[2].tr.Observer())}}
	}
	srv := arbor.NewServer(arbor.WithObserver(obs()...))
	arbor.Handle1(srv, "inc", func(ctx context.Context, n int) (int, error) { return n + 1, nil })
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := arbor.Dial(context.Background(), l.URL(), arbor.WithObserver(obs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const calls = 3
	for range calls {
		if got, err := arbor.Call1[int](testContext(t), c, "inc", 1); err != nil || got != 2 {
			t.Fatalf("inc: %v %v", got, err)
		}
	}
	for i, p := range ps {
		spans := p.exp.GetSpans()
		if len(spans) != 2*calls {
			t.Errorf("tracing %d: %d spans ended, want %d (a client and a server span per call)", i, len(spans), 2*calls)
		}
		for _, s := range spans {
			if v, _ := attr(s, arborotel.AttrCode); v.AsString() != "OK" {
				t.Errorf("tracing %d: %v span ended with code %q, want OK", i, s.SpanKind, v.AsString())
			}
		}
	}
}
