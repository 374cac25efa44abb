package metrics

import (
	"sort"

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
	var out []FunctionStats
	for _, f := range s.all() {
		v := f.read()
		if v.started == 0 {
			continue
		}
		fs := FunctionStats{Function: f.label, ByCode: v.codes, Calls: v.ended, InFlight: v.inFlight, Received: v.recv, Sent: v.sent}
		fs.Errors = v.ended - v.codes[status.OK.String()]
		if v.count > 0 {
			fs.Mean = v.sum / float64(v.count)
			fs.P50 = quantile(0.5, v.count, s.upper, v.cumulative)
			fs.P99 = quantile(0.99, v.count, s.upper, v.cumulative)
		}
		out = append(out, fs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Function < out[j].Function })
	return out
}

// quantile estimates the q-quantile from cumulative bucket counts by
// linear interpolation within the bucket that holds it, as Prometheus's
// histogram_quantile does.
func quantile(q float64, n uint64, upper []float64, cum map[float64]uint64) float64 {
	rank := q * float64(n)
	lower, prev := 0.0, 0.0
	for _, u := range upper {
		c := float64(cum[u])
		if c >= rank {
			if c == prev {
				return u
			}
			return lower + (u-lower)*(rank-prev)/(c-prev)
		}
		lower, prev = u, c
	}
	return lower // in the +Inf bucket: the highest bound is all we know
}
