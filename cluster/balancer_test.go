package cluster

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func candidates(n int) []Candidate {
	cs := make([]Candidate, n)
	for i := range cs {
		cs[i] = Candidate{Name: fmt.Sprintf("node-%d", i), Stats: NewStats(0)}
	}
	return cs
}

func counts(b Balancer, cs []Candidate, picks int, key func(i int) string) []int {
	c := make([]int, len(cs))
	for i := range picks {
		k := ""
		if key != nil {
			k = key(i)
		}
		c[b.Pick(cs, k)]++
	}
	return c
}

// chiSquare is the statistic of observed counts against a uniform
// expectation.
func chiSquare(c []int) float64 {
	total := 0
	for _, v := range c {
		total += v
	}
	e := float64(total) / float64(len(c))
	x := 0.0
	for _, v := range c {
		d := float64(v) - e
		x += d * d / e
	}
	return x
}

// chi2crit999df9 is the 0.999 quantile of chi-square with 9 degrees of
// freedom: a uniform picker exceeds it once in a thousand runs (and the
// seeded ones here never do).
const chi2crit999df9 = 27.88

func TestEmptyCandidates(t *testing.T) {
	for _, b := range []Balancer{&RoundRobin{}, NewRandom(nil), &LeastConnections{}, NewP2C(nil, nil), Rendezvous{}} {
		if got := b.Pick(nil, "k"); got != -1 {
			t.Errorf("%T.Pick(nil) = %d, want -1", b, got)
		}
		if got := b.Pick(candidates(1), "k"); got != 0 {
			t.Errorf("%T.Pick(one) = %d, want 0", b, got)
		}
	}
}

func TestRoundRobinIsExact(t *testing.T) {
	cs := candidates(10)
	for i, c := range counts(&RoundRobin{}, cs, 1000, nil) {
		if c != 100 {
			t.Fatalf("candidate %d picked %d times of 1000, want exactly 100", i, c)
		}
	}
}

func TestRandomIsUniform(t *testing.T) {
	cs := candidates(10)
	c := counts(NewRandom(rand.NewPCG(1, 2)), cs, 100_000, nil)
	if x := chiSquare(c); x > chi2crit999df9 {
		t.Fatalf("counts %v: chi-square %.1f > %.1f", c, x, chi2crit999df9)
	}
	// Same seed, same sequence.
	a, b := NewRandom(rand.NewPCG(7, 7)), NewRandom(rand.NewPCG(7, 7))
	for range 100 {
		if a.Pick(cs, "") != b.Pick(cs, "") {
			t.Fatal("equal seeds gave different picks")
		}
	}
}

func TestLeastConnections(t *testing.T) {
	cs := candidates(5)
	b := &LeastConnections{}
	// Idle candidates share the picks in turn.
	for i, c := range counts(b, cs, 50, nil) {
		if c != 10 {
			t.Fatalf("idle candidate %d got %d of 50 picks, want 10", i, c)
		}
	}
	// Calls that never finish: the in-flight counts stay level.
	cs[2].Stats.inflight.Store(10)
	for range 100 {
		cs[b.Pick(cs, "")].Stats.Start()
	}
	var got []int64
	for _, c := range cs {
		got = append(got, c.Stats.Inflight())
	}
	// The four idle ones take 40 calls to catch up with the busy one's
	// 10, then all five share the other 60: 22 in flight everywhere.
	for i, v := range got {
		if v != 22 {
			t.Fatalf("in flight after 100 picks: %v, want 22 everywhere (candidate %d)", got, i)
		}
	}
}

func TestStatsPeakEWMA(t *testing.T) {
	tau := 10 * time.Second
	s := NewStats(tau)
	at := t0
	s.Observe(10*time.Millisecond, at)
	if got := s.Latency(at); got != 10*time.Millisecond {
		t.Fatalf("first sample: %v", got)
	}
	// A peak is taken at once.
	at = at.Add(time.Second)
	s.Observe(100*time.Millisecond, at)
	if got := s.Latency(at); got != 100*time.Millisecond {
		t.Fatalf("after a peak: %v, want 100ms", got)
	}
	// A fast sample after dt pulls the average down by weight e^(-dt/tau).
	at = at.Add(2 * time.Second)
	s.Observe(10*time.Millisecond, at)
	w := math.Exp(-2.0 / 10)
	want := 100*w + 10*(1-w)
	if got := float64(s.Latency(at)) / float64(time.Millisecond); math.Abs(got-want) > 1e-6 {
		t.Fatalf("after a fast sample: %.6fms, want %.6fms", got, want)
	}
	// Idle, it decays toward 0 with the same time constant.
	if got, want := float64(s.Latency(at.Add(tau))), float64(s.Latency(at))/math.E; math.Abs(got-want) > 1 {
		t.Fatalf("one tau later: %v, want %v", time.Duration(got), time.Duration(want))
	}
	// Cost weighs in-flight calls.
	s.Start()
	s.Start()
	if got, want := s.Cost(at), 3*s.latency(at.UnixNano()); math.Abs(got-want) > 1e-3 {
		t.Fatalf("cost with 2 in flight: %v, want %v", got, want)
	}
	s.Done(5*time.Millisecond, at)
	if s.Inflight() != 1 {
		t.Fatalf("in flight %d after Done", s.Inflight())
	}
	// Unmeasured: free when idle, penalized when busy.
	var fresh Stats
	if fresh.Cost(at) != 0 {
		t.Fatal("an idle unmeasured candidate has a cost")
	}
	fresh.Start()
	if fresh.Cost(at) < unmeasuredPenalty {
		t.Fatal("a busy unmeasured candidate is not penalized")
	}
}

func TestP2CAvoidsSlowAndBusy(t *testing.T) {
	clock := func() time.Time { return t0 }
	cs := candidates(3)
	cs[0].Stats.Observe(10*time.Millisecond, t0)
	cs[1].Stats.Observe(10*time.Millisecond, t0)
	cs[2].Stats.Observe(100*time.Millisecond, t0)
	c := counts(NewP2C(rand.NewPCG(1, 2), clock), cs, 30_000, nil)
	if c[2] != 0 {
		t.Fatalf("idle slow candidate picked %d times: %v", c[2], c)
	}
	if d := math.Abs(float64(c[0]-c[1])) / 30_000; d > 0.02 {
		t.Fatalf("equal fast candidates split %v", c)
	}
	// Equal latency, one busy: it loses every comparison.
	cs[2] = Candidate{Name: "node-2", Stats: NewStats(0)}
	cs[2].Stats.Observe(10*time.Millisecond, t0)
	for range 5 {
		cs[0].Stats.Start()
	}
	c = counts(NewP2C(rand.NewPCG(3, 4), clock), cs, 30_000, nil)
	if c[0] != 0 {
		t.Fatalf("busy candidate picked %d times: %v", c[0], c)
	}
}

// TestP2CShareUnderLoad simulates an open-loop client over ten members,
// one of them ten times slower, with calls finishing after each member's
// latency. Cost is latency × (in flight + 1), so the slow member only wins
// a comparison when a fast one has ten times its queue: at a light load it
// gets next to nothing, at a heavy one (15 calls queued per fast member)
// measurably more, always far below its fair share of 10%. The fast
// members always get even shares.
func TestP2CShareUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name             string
		gap              time.Duration // between calls
		minSlow, maxSlow float64       // share of the slow member
	}{
		{"light", 100 * time.Microsecond, 0, 0.0005},
		{"heavy", 15 * time.Microsecond, 0.0005, 0.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, calls = 10, 100_000
			cs := candidates(n)
			lat := make([]time.Duration, n)
			for i := range lat {
				lat[i] = 2 * time.Millisecond
			}
			lat[9] = 20 * time.Millisecond
			now := t0
			b := NewP2C(rand.NewPCG(5, 6), func() time.Time { return now })
			type call struct {
				at  time.Time
				idx int
			}
			var pending []call
			picks := make([]int, n)
			for range calls {
				now = now.Add(tc.gap)
				kept := pending[:0]
				for _, c := range pending {
					if !c.at.After(now) {
						cs[c.idx].Stats.Done(lat[c.idx], c.at)
					} else {
						kept = append(kept, c)
					}
				}
				pending = kept
				i := b.Pick(cs, "")
				picks[i]++
				cs[i].Stats.Start()
				pending = append(pending, call{now.Add(lat[i]), i})
			}
			share := float64(picks[9]) / calls
			if share < tc.minSlow || share > tc.maxSlow {
				t.Fatalf("slow member got %.2f%% of calls, want %.1f%%..%.1f%% (fair share 10%%): %v", 100*share, 100*tc.minSlow, 100*tc.maxSlow, picks)
			}
			if x := chiSquare(picks[:9]); x > 26.12 { // 0.999 quantile, 8 degrees of freedom
				t.Fatalf("fast members uneven: %v (chi-square %.1f)", picks[:9], x)
			}
			t.Logf("picks %v: slow member %.2f%% of calls", picks, 100*share)
		})
	}
}

func TestRendezvousDistributionAndStability(t *testing.T) {
	const keys = 10_000
	key := func(i int) string { return fmt.Sprintf("key-%d", i) }
	owner := func(cs []Candidate) []string {
		o := make([]string, keys)
		for i := range o {
			o[i] = cs[Rendezvous{}.Pick(cs, key(i))].Name
		}
		return o
	}
	cs := candidates(10)
	c := counts(Rendezvous{}, cs, keys, key)
	if x := chiSquare(c); x > chi2crit999df9 {
		t.Fatalf("10 000 keys over 10 nodes: %v, chi-square %.1f", c, x)
	}
	before := owner(cs)

	// Order of candidates does not matter.
	shuffled := append([]Candidate(nil), cs...)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, o := range owner(shuffled) {
		if o != before[i] {
			t.Fatalf("key %d moved when candidates were reordered", i)
		}
	}

	// Adding an 11th node moves about 1/11 of the keys, all to it.
	grown := append(append([]Candidate(nil), cs...), Candidate{Name: "node-10"})
	added := 0
	for i, o := range owner(grown) {
		if o != before[i] {
			added++
			if o != "node-10" {
				t.Fatalf("key %d moved from %s to %s, not to the new node", i, before[i], o)
			}
		}
	}
	if lo, hi := keys/11/2, keys*3/11/2; added < lo || added > hi {
		t.Fatalf("adding 1 of 11 nodes moved %d keys, want about %d", added, keys/11)
	}

	// Removing a node moves exactly the keys it held.
	shrunk := append(append([]Candidate(nil), cs[:3]...), cs[4:]...)
	moved := 0
	for i, o := range owner(shrunk) {
		if o != before[i] {
			moved++
			if before[i] != "node-3" {
				t.Fatalf("key %d moved from %s, which is still there", i, before[i])
			}
		}
	}
	if moved != c[3] {
		t.Fatalf("removing node-3 moved %d keys; it held %d", moved, c[3])
	}
	t.Logf("of %d keys: adding an 11th node moved %d (1/11 = %d), removing 1 of 10 moved %d (1/10 = %d)", keys, added, keys/11, moved, keys/10)
}
