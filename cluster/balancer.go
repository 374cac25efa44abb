package cluster

import (
	"math"
	"sync/atomic"
	"time"
)

// Balancer picks one of several candidate members for a call. It is a
// policy only: it never dials, and it keeps no per-candidate state of its
// own beyond what Candidate.Stats carries, so the same Balancer serves any
// candidate list. Implementations are safe for concurrent use.
type Balancer interface {
	// Pick returns the index in cands of the chosen candidate, or -1 when
	// cands is empty. key matters only to key-affine balancers
	// (Rendezvous); the others ignore it.
	Pick(cands []Candidate, key string) int
}

// Candidate is one member a Balancer may pick.
type Candidate struct {
	// Name identifies the member; Rendezvous hashes it, so it must be the
	// same on every client (the member name is).
	Name string
	// Stats is the caller's view of the load on this member. A nil Stats
	// counts as idle with no latency measured.
	Stats *Stats
}

// DefaultDecay is the time constant of the latency average of a Stats
// made with NewStats(0) or used as a zero value (Finagle's and Linkerd's
// default): an observation's weight halves every 6.9 s.
const DefaultDecay = 10 * time.Second

// unmeasuredPenalty is the cost of a candidate with calls in flight but no
// latency measured yet (Finagle's Penalty, in nanoseconds: about 39 h).
// Without it a new member, whose cost would be 0, takes every call until
// the first one returns.
const unmeasuredPenalty = float64(math.MaxInt64 >> 16)

// Stats is what a client observes of one member: the calls it has in
// flight there and a peak-sensitive exponentially weighted moving average
// of their latency (Finagle's and Linkerd's "peak EWMA"). A slower answer
// than the average replaces the average at once; faster ones pull it down
// gradually, weighted by the time since the previous observation, so a
// member that turns slow is avoided immediately and one that recovers is
// trusted again over a few multiples of the decay time. While idle, the
// average decays toward 0, so a member that was slow is eventually tried
// again.
//
// The zero value is ready to use, with DefaultDecay. Safe for concurrent
// use and lock-free.
type Stats struct {
	decay    time.Duration
	inflight atomic.Int64
	cost     atomic.Uint64 // float64 bits: the average, in nanoseconds
	stamp    atomic.Int64  // Unix nanoseconds of the last observation
}

// NewStats returns Stats whose latency average has time constant decay
// (DefaultDecay when decay <= 0).
func NewStats(decay time.Duration) *Stats {
	return &Stats{decay: decay}
}

func (s *Stats) tau() float64 {
	if s.decay <= 0 {
		return float64(DefaultDecay)
	}
	return float64(s.decay)
}

// Start records a call sent to the member.
func (s *Stats) Start() { s.inflight.Add(1) }

// Done records the end of a call started with Start that took rtt,
// finishing at now.
func (s *Stats) Done(rtt time.Duration, now time.Time) {
	s.inflight.Add(-1)
	s.Observe(rtt, now)
}

// Observe adds a latency sample taken at now without changing the
// in-flight count (for example the round trip of a keep-alive ping).
func (s *Stats) Observe(rtt time.Duration, now time.Time) {
	if rtt < 0 {
		rtt = 0
	}
	r := float64(rtt)
	t := now.UnixNano()
	// Lock-free: many callers finish at once on a busy client, and a
	// mutex there parks them. The stamp and the cost may pair across two
	// concurrent observations, which only blurs the average a little.
	for {
		bits := s.cost.Load()
		cost := math.Float64frombits(bits)
		last := s.stamp.Load()
		switch {
		case last == 0 || r > cost:
			cost = r // first sample, or a peak: taken at once
		default:
			w := math.Exp(-float64(max(t-last, 0)) / s.tau())
			cost = cost*w + r*(1-w)
		}
		if s.cost.CompareAndSwap(bits, math.Float64bits(cost)) {
			s.stamp.Store(t)
			return
		}
	}
}

// Inflight returns the number of calls started and not yet done.
func (s *Stats) Inflight() int64 { return s.inflight.Load() }

// Latency returns the peak EWMA at now, decayed toward 0 for the time
// since the last observation; 0 if nothing was observed.
func (s *Stats) Latency(now time.Time) time.Duration {
	return time.Duration(s.latency(now.UnixNano()))
}

func (s *Stats) latency(now int64) float64 {
	// The two loads may straddle an observation; the result is then an
	// average between two consecutive states, which is harmless for
	// choosing a member and saves a lock on every pick.
	cost := math.Float64frombits(s.cost.Load())
	last := s.stamp.Load()
	if last == 0 || now <= last {
		return cost
	}
	return cost * math.Exp(-float64(now-last)/s.tau())
}

// Cost returns the figure P2C compares: latency × (in flight + 1), so
// both a slow member and a busy one look expensive. A member with calls in
// flight and no latency measured yet costs a large penalty.
func (s *Stats) Cost(now time.Time) float64 { return s.costAt(now.UnixNano()) }

func (s *Stats) costAt(now int64) float64 {
	if s == nil {
		return 0
	}
	n := float64(s.inflight.Load())
	if n < 0 {
		n = 0
	}
	if s.stamp.Load() == 0 {
		if n == 0 {
			return 0
		}
		return unmeasuredPenalty + n
	}
	return s.latency(now) * (n + 1)
}

func (c Candidate) inflight() int64 {
	if c.Stats == nil {
		return 0
	}
	return c.Stats.inflight.Load()
}
