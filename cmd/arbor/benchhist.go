package main

import (
	"math"
	"math/bits"
	"time"
)

// latencyHist is a log-linear latency histogram: 64 sub-buckets per power
// of two of nanoseconds (about 1.1% precision), fixed size, so recording
// never allocates and a long run holds constant memory. Each caller has
// its own; they are merged at the end.
type latencyHist struct {
	counts     [64 * 64]uint64
	n          uint64
	sum        float64 // ns
	min, max   time.Duration
	overflowed uint64
}

const subBits = 6 // 64 sub-buckets

func histIndex(d time.Duration) int {
	v := uint64(max(d, 1))
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1))
	if e < subBits {
		return int(v) // exact below 64ns
	}
	sub := (v >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits | int(sub)
}

// histValue is the lower bound of bucket i.
func histValue(i int) time.Duration {
	if i < 1<<subBits {
		return time.Duration(i)
	}
	e := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	return time.Duration((1<<subBits | sub) << (e - subBits))
}

func (h *latencyHist) record(d time.Duration) {
	i := histIndex(d)
	if i >= len(h.counts) {
		i = len(h.counts) - 1
		h.overflowed++
	}
	h.counts[i]++
	h.n++
	h.sum += float64(d)
	if h.n == 1 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
}

func (h *latencyHist) merge(o *latencyHist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	h.overflowed += o.overflowed
}

// quantile returns the q-quantile (the bucket's midpoint, clamped to the
// observed range).
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histValue(i), histValue(i+1)
			mid := lo + (hi-lo)/2
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max
}

func (h *latencyHist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// countBuckets counts the samples in the buckets below index end: those
// below histValue(end).
func (h *latencyHist) countBuckets(end int) uint64 {
	var n uint64
	for i := 0; i < end && i < len(h.counts); i++ {
		n += h.counts[i]
	}
	return n
}
