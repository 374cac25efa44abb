package metrics

import (
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/arbor-rpc/arbor/internal/status"
)

// FunctionStats is one function label's figures on one side, for the
// console.
type FunctionStats struct {
	Function string           `json:"function"`
	Calls    int64            `json:"calls"`
	Errors   int64            `json:"errors"` // calls that did not end OK
	ByCode   map[string]int64 `json:"by_code"`
	InFlight int64            `json:"in_flight"`
	// Mean, P50 and P99 are latencies in seconds (P50 and P99 estimated
	// from the histogram's buckets, as histogram_quantile does).
	Mean     float64 `json:"mean"`
	P50      float64 `json:"p50"`
	P99      float64 `json:"p99"`
	Received int64   `json:"received"` // bytes
	Sent     int64   `json:"sent"`
}

// Functions returns the figures of every function label of side
// ("server" or "client") that has seen a call, sorted by function.
func (m *Metrics) Functions(side string) []FunctionStats {
	s := m.server
	if side == "client" {
		s = m.client
	}
	var fns []*fnStats
	if p := s.fns.Load(); p != nil {
		for _, f := range *p {
			fns = append(fns, f)
		}
	}
	fns = append(fns, s.other)
	out := make([]FunctionStats, 0, len(fns))
	for _, f := range fns {
		fs := FunctionStats{Function: f.label, ByCode: map[string]int64{}}
		for c := range f.codes {
			if cc := f.codes[c].Load(); cc != nil {
				n := int64(readValue(cc.c))
				fs.ByCode[status.Code(c).String()] = n
				fs.Calls += n
				if c != int(status.OK) {
					fs.Errors += n
				}
			}
		}
		fs.InFlight = int64(readValue(f.inflight))
		fs.Received = int64(readValue(f.recv))
		fs.Sent = int64(readValue(f.sent))
		if h, ok := f.latency.(prometheus.Metric); ok {
			var d dto.Metric
			if h.Write(&d) == nil && d.Histogram != nil {
				hist := d.Histogram
				if n := hist.GetSampleCount(); n > 0 {
					fs.Mean = hist.GetSampleSum() / float64(n)
					fs.P50 = quantile(0.5, hist)
					fs.P99 = quantile(0.99, hist)
				}
			}
		}
		if fs.Calls == 0 && fs.InFlight == 0 {
			continue
		}
		out = append(out, fs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out
}

// readValue reads a counter's or gauge's value.
func readValue(c prometheus.Metric) float64 {
	var d dto.Metric
	if c.Write(&d) != nil {
		return 0
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return 0
}

// quantile estimates the q-quantile from cumulative buckets by linear
// interpolation within the bucket that holds it.
func quantile(q float64, h *dto.Histogram) float64 {
	n := float64(h.GetSampleCount())
	rank := q * n
	lower, prev := 0.0, 0.0
	for _, b := range h.GetBucket() {
		cum := float64(b.GetCumulativeCount())
		upper := b.GetUpperBound()
		if cum >= rank {
			if math.IsInf(upper, 1) {
				return lower
			}
			if cum == prev {
				return upper
			}
			return lower + (upper-lower)*(rank-prev)/(cum-prev)
		}
		lower, prev = upper, cum
	}
	return lower
}
