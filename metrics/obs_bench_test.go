package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/conn"
)

// BenchmarkObserverCall is the observer's own work for one call on one
// side (start and end), from parallel goroutines sharing the function.
func BenchmarkObserverCall(b *testing.B) {
	m := newMetrics(b)
	obs := m.Observer()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		info := &conn.CallInfo{Function: "echo", ArgBytes: 70, ResultBytes: 66}
		for pb.Next() {
			info.Start = time.Now()
			c := obs.CallStarted(ctx, info)
			obs.CallEnded(c, info, nil)
		}
	})
}
