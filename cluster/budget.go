package cluster

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// retryBudget lets retries be at most a fraction of calls (gRPC's retry
// throttling, Finagle's RetryBudget): every call deposits ratio tokens, a
// retry takes one, and minPerSec tokens a second are there regardless, so
// a few retries always pass and a storm of them never does. Deposits are
// one atomic add (every call makes one); withdrawals, rare, take a lock.
type retryBudget struct {
	ratio     float64
	minPerSec float64
	max       float64
	deposits  atomic.Int64

	mu      sync.Mutex
	tokens  float64
	counted int64 // deposits already turned into tokens
	last    time.Time
}

func (b *retryBudget) init(p RetryPolicy) {
	b.ratio, b.minPerSec = p.BudgetRatio, p.BudgetMin
	b.max = max(10, b.minPerSec) // what one second of the minimum allows at once
	b.tokens = b.max
	b.last = time.Now()
}

// deposit records a call.
func (b *retryBudget) deposit() { b.deposits.Add(1) }

// depositAt records a call made at now.
func (b *retryBudget) depositAt(time.Time) { b.deposits.Add(1) }

// withdraw takes a retry's token, reporting whether there was one.
func (b *retryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	d := b.deposits.Load()
	earned := float64(d-b.counted)*b.ratio + max(now.Sub(b.last).Seconds(), 0)*b.minPerSec
	b.counted, b.last = d, now
	// Tokens from calls pile up to a bound, so a long quiet stretch does
	// not save up a storm.
	b.tokens = min(b.tokens+earned, b.max+b.ratio*1000)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// latencyWindow keeps the latest call latencies for an adaptive hedging
// delay (their 95th percentile).
type latencyWindow struct {
	mu   sync.Mutex
	ring [256]time.Duration
	n    int
	next int

	cacheAt time.Time
	p95     time.Duration
}

func (w *latencyWindow) add(d time.Duration) {
	w.mu.Lock()
	w.ring[w.next] = d
	w.next = (w.next + 1) % len(w.ring)
	w.n = min(w.n+1, len(w.ring))
	w.mu.Unlock()
}

// percentile95 is the 95th percentile of the window, recomputed at most
// every 100 ms; 0 without data.
func (w *latencyWindow) percentile95() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n < 20 {
		return 0
	}
	if now := time.Now(); now.Sub(w.cacheAt) > 100*time.Millisecond {
		s := slices.Clone(w.ring[:w.n])
		slices.Sort(s)
		w.p95, w.cacheAt = s[len(s)*95/100], now
	}
	return w.p95
}
