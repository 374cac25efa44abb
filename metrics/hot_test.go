package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/metrics"
)

// Functions whose ids share their length and first, middle and last bytes
// (one slot of the lookup cache in front of the function table), called
// in turn, are counted each under its own label, latencies in their own
// histograms.
func TestCollidingFunctionIdsCountApart(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obs := m.Observer()
	ids := []string{"a1x2z", "a3x4z", "a5x6z"}
	want := map[string]float64{}
	info := &conn.CallInfo{Outgoing: true}
	for i := range 60 {
		id := ids[i%len(ids)]
		if i%4 == 0 {
			id = ids[0] // an uneven mix
		}
		want[id]++
		info.Function, info.Start = id, time.Now().Add(-time.Duration(i)*time.Millisecond)
		ctx := obs.CallStarted(context.Background(), info)
		obs.CallEnded(ctx, info, nil)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, hist := map[string]float64{}, map[string]uint64{}
	for _, f := range fams {
		for _, mm := range f.Metric {
			fn := label(mm, "function")
			switch f.GetName() {
			case "arbor_client_calls_total":
				got[fn] += mm.GetCounter().GetValue()
			case "arbor_client_call_duration_seconds":
				hist[fn] = mm.GetHistogram().GetSampleCount()
			}
		}
	}
	for id, n := range want {
		if got[id] != n || hist[id] != uint64(n) {
			t.Errorf("%s: %v calls, %d latencies; want %v", id, got[id], hist[id], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.Label {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}
