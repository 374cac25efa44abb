package main

import (
	"testing"
	"time"
)

// Each bar of the latency histogram holds the calls no slower than its
// up_to and slower than the bar before, and the extra last bar only the
// calls slower than the last up_to: a call is never drawn a bar too far
// (into "> p99.9" in the worst case, although it was no slower).
func TestBenchHistogramBarsHoldTheirCalls(t *testing.T) {
	for name, samples := range map[string][]time.Duration{
		"1ms to 2ms by 1µs": func() (s []time.Duration) {
			for i := range 1000 {
				s = append(s, time.Millisecond+time.Duration(i)*time.Microsecond)
			}
			return s
		}(),
		"all 1ms": func() (s []time.Duration) {
			for range 1000 {
				s = append(s, time.Millisecond)
			}
			return s
		}(),
		"two modes": func() (s []time.Duration) {
			for i := range 3000 {
				s = append(s, 200*time.Microsecond+time.Duration(i%300)*time.Microsecond)
			}
			return append(s, 80*time.Millisecond, 90*time.Millisecond)
		}(),
	} {
		var h latencyHist
		for _, d := range samples {
			h.record(d)
		}
		bars := histogramBars(&h, 10)
		var total uint64
		prev := time.Duration(-1)
		for i, b := range bars {
			total += b.Count
			upTo := time.Duration(b.UpTo*1e9 + 0.5)
			rest := i == 10 // the bar of everything slower than the last up_to
			var want uint64
			for _, d := range samples {
				if d > prev && (rest || d <= upTo) {
					want++
				}
			}
			if b.Count != want {
				t.Errorf("%s: bar %d (%v, %v] holds %d calls, want %d", name, i, prev, upTo, b.Count, want)
			}
			prev = upTo
		}
		if total != uint64(len(samples)) {
			t.Errorf("%s: the bars hold %d calls, want %d", name, total, len(samples))
		}
	}
}
