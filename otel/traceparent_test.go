package arborotel

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbor-rpc/arbor/wire"
)

func TestParseTraceparent(t *testing.T) {
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	c, ok := parseTraceparent(good)
	if !ok || c.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || c.SpanID.String() != "00f067aa0ba902b7" || !c.TraceFlags.IsSampled() || !c.Remote {
		t.Fatalf("parse %q = %+v %v", good, c, ok)
	}
	if got := formatTraceparent(trace.NewSpanContext(c)); got != good {
		t.Errorf("format = %q", got)
	}
	for _, bad := range []string{
		"",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      // short
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // version 00 with more
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // version ff
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero span id
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // separator
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   // not hex
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-04",   // a flag version 00 does not define
	} {
		if _, ok := parseTraceparent(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
	// The random flag (W3C level 2) is kept, as the propagator keeps it.
	if c, ok := parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02"); !ok || c.TraceFlags != trace.FlagsRandom ||
		formatTraceparent(trace.NewSpanContext(c)) != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02" {
		t.Errorf("random flag: %+v %v", c, ok)
	}
	// A later version may append fields after a dash.
	if _, ok := parseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"); !ok {
		t.Error("a future version's extra field was refused")
	}
	if n := testing.AllocsPerRun(100, func() { parseTraceparent(good) }); n != 0 {
		t.Errorf("parsing allocates %.0f times", n)
	}
}

// FuzzTraceparent: whatever a peer sends, parsing never panics, what it
// accepts formats back to the same version-00 header, and extraction
// (which takes this parser's way for W3C trace context) finds what
// propagation.TraceContext finds.
func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-more")
	f.Add("ff-" + strings.Repeat("0", 50))
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-07")
	f.Add("fe-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		md := []wire.MD{{Key: TraceparentKey, Value: s}, {Key: TracestateKey, Value: "k=v"}}
		if s != "" {
			w3c := New(Config{})
			got := trace.SpanContextFromContext(w3c.extract(context.Background(), md, s, "k=v"))
			want := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), mdCarrier{&md}))
			if !got.Equal(want) {
				t.Fatalf("extracting %q gives %v, the propagator %v", s, got, want)
			}
		}
		c, ok := parseTraceparent(s)
		if !ok {
			return
		}
		if !c.TraceID.IsValid() || !c.SpanID.IsValid() {
			t.Fatalf("accepted invalid ids from %q", s)
		}
		out := formatTraceparent(trace.NewSpanContext(c))
		if s[:2] == "00" && s[:53] != out[:53] {
			t.Fatalf("%q formats back as %q", s, out)
		}
		if _, ok := parseTraceparent(out); !ok {
			t.Fatalf("own output %q refused", out)
		}
	})
}
