package cluster

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// RoundRobin picks the candidates in turn. With a fixed candidate list
// every candidate gets the same number of picks, whatever their load. The
// zero value is ready to use.
type RoundRobin struct {
	next atomic.Uint64
}

// Pick implements Balancer.
func (b *RoundRobin) Pick(cands []Candidate, _ string) int {
	if len(cands) == 0 {
		return -1
	}
	return int((b.next.Add(1) - 1) % uint64(len(cands)))
}

// picker draws random indexes, from a seeded source (under a mutex) or,
// when none is given, from math/rand/v2's lock-free global generator.
type picker struct {
	mu sync.Mutex
	r  *rand.Rand // nil: global generator
}

func newPicker(src rand.Source) picker {
	if src == nil {
		return picker{}
	}
	return picker{r: rand.New(src)}
}

func (p *picker) intN(n int) int {
	if p.r == nil {
		return rand.IntN(n)
	}
	p.mu.Lock()
	v := p.r.IntN(n)
	p.mu.Unlock()
	return v
}

// Random picks a candidate uniformly at random; for stateless calls where
// load is spread by numbers alone.
type Random struct {
	p picker
}

// NewRandom returns a Random drawing from src (tests pass a seeded source
// such as rand.NewPCG(1, 2)); nil uses the global generator.
func NewRandom(src rand.Source) *Random { return &Random{p: newPicker(src)} }

// Pick implements Balancer.
func (b *Random) Pick(cands []Candidate, _ string) int {
	if len(cands) == 0 {
		return -1
	}
	return b.p.intN(len(cands))
}

// LeastConnections picks the candidate with the fewest calls in flight
// (per Candidate.Stats). Ties are broken in turn: the scan starts one
// place further on every pick, so idle candidates share the calls instead
// of the first one taking them all. The zero value is ready to use.
type LeastConnections struct {
	next atomic.Uint64
}

// Pick implements Balancer.
func (b *LeastConnections) Pick(cands []Candidate, _ string) int {
	n := len(cands)
	if n == 0 {
		return -1
	}
	start := int((b.next.Add(1) - 1) % uint64(n))
	best, bestLoad := start, cands[start].inflight()
	for i := 1; i < n && bestLoad > 0; i++ {
		j := start + i
		if j >= n {
			j -= n
		}
		if l := cands[j].inflight(); l < bestLoad {
			best, bestLoad = j, l
		}
	}
	return best
}

// P2C is the power of two choices over peak-EWMA cost (Finagle's and
// Linkerd's default balancer): it draws two distinct candidates at random
// and picks the one with the lower Stats.Cost, latency × (in flight + 1).
// Comparing two random candidates instead of scanning all keeps picks O(1)
// and avoids the herd that "always the best one" causes when every client
// sees the same best member.
type P2C struct {
	p   picker
	now func() time.Time
}

// NewP2C returns a P2C drawing from src (nil: the global generator) and
// reading the time from now (nil: time.Now; tests pass a fixed clock).
func NewP2C(src rand.Source, now func() time.Time) *P2C {
	if now == nil {
		now = time.Now
	}
	return &P2C{p: newPicker(src), now: now}
}

// Pick implements Balancer.
func (b *P2C) Pick(cands []Candidate, _ string) int {
	n := len(cands)
	switch n {
	case 0:
		return -1
	case 1:
		return 0
	}
	i := b.p.intN(n)
	j := b.p.intN(n - 1)
	if j >= i {
		j++
	}
	now := b.now().UnixNano()
	if cands[j].Stats.costAt(now) < cands[i].Stats.costAt(now) {
		return j
	}
	return i
}

// Rendezvous is consistent hashing by highest random weight (Thaler and
// Ravishankar): for a key, every candidate gets a pseudo-random weight
// from hash(key, name), and the heaviest wins. Every client with the same
// candidate names picks the same member for a key, and adding or removing
// one of N members moves only the keys that member wins or held (about 1/N
// of them), with no ring or virtual nodes to maintain. Load is ignored.
// The zero value is ready to use.
type Rendezvous struct{}

// Pick implements Balancer.
func (Rendezvous) Pick(cands []Candidate, key string) int {
	if len(cands) == 0 {
		return -1
	}
	kh := fnv64a(key)
	best, bestW := 0, uint64(0)
	for i, c := range cands {
		if w := mix64(kh ^ mix64(fnv64a(c.Name))); i == 0 || w > bestW {
			best, bestW = i, w
		}
	}
	return best
}

// fnv64a is FNV-1a over s; stable across processes and machines, unlike
// hash/maphash, which is seeded per process.
func fnv64a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is the finalizer of MurmurHash3: it spreads every input bit over
// the output, which FNV alone does poorly for short, similar names.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
