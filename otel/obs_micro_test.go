package arborotel_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/arbor-rpc/arbor/conn"
	arborotel "github.com/arbor-rpc/arbor/otel"
)

// BenchmarkObserverUnsampled is the tracing observer's own work for one
// call under an unsampled parent, both sides (the client's start and end,
// then the server's with the metadata the client sent).
func BenchmarkObserverUnsampled(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	defer tp.Shutdown(context.Background())
	obs := arborotel.New(arborotel.Config{TracerProvider: tp}).Observer()
	ctx, sp := tp.Tracer("bench").Start(context.Background(), "load")
	defer sp.End()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		out := &conn.CallInfo{Outgoing: true, Function: "echo", ArgBytes: 70, Start: time.Now()}
		in := &conn.CallInfo{Function: "echo", ArgBytes: 70, Start: time.Now()}
		for pb.Next() {
			out.Metadata = nil
			c := obs.CallStarted(ctx, out)
			in.Metadata = out.Metadata
			s := obs.CallStarted(context.Background(), in)
			obs.CallEnded(s, in, nil)
			obs.CallEnded(c, out, nil)
		}
	})
}
