package cache

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the circuit breaker that turns a Redis outage into
// skipped operations instead of latency.

const (
	breakerClosed  int32 = iota // operations go to the server
	breakerOpen                 // operations are skipped until retryAt
	breakerProbing              // one probe is out; operations are skipped
)

// breaker counts consecutive failures; at threshold it opens, and while
// open the operations are skipped. Once its wait has passed, one caller is
// told to probe the server (half-open: the others go on skipping). A good
// probe closes the breaker; a failed one opens it again for twice as long,
// up to maxWait. The closed path costs one atomic load.
type breaker struct {
	threshold        int32
	minWait, maxWait time.Duration

	state   atomic.Int32
	fails   atomic.Int32 // consecutive failures while closed
	retryAt atomic.Int64 // UnixNano: when an open breaker lets a probe out

	mu       sync.Mutex // guards the fields below
	wait     time.Duration
	openedAt time.Time
}

func newBreaker(threshold int, minWait, maxWait time.Duration) *breaker {
	return &breaker{threshold: int32(threshold), minWait: minWait, maxWait: maxWait}
}

// allow reports whether an operation may go to the server, and whether
// the caller is to start the probe.
func (b *breaker) allow() (ok, probe bool) {
	switch b.state.Load() {
	case breakerClosed:
		return true, false
	case breakerOpen:
		if time.Now().UnixNano() >= b.retryAt.Load() && b.state.CompareAndSwap(breakerOpen, breakerProbing) {
			return false, true
		}
	}
	return false, false
}

// success records an operation that the server answered.
func (b *breaker) success() {
	if b.fails.Load() != 0 {
		b.fails.Store(0)
	}
}

// failure records a failed operation and reports whether it opened the
// breaker. Failures of operations begun before it opened count for
// nothing.
func (b *breaker) failure() bool {
	if b.state.Load() != breakerClosed || b.fails.Add(1) < b.threshold {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.state.CompareAndSwap(breakerClosed, breakerOpen) {
		return false
	}
	b.wait = b.minWait
	b.openedAt = time.Now()
	b.retryAt.Store(b.openedAt.Add(jitter(b.wait)).UnixNano())
	return true
}

// probed records the probe's outcome. A good probe closes the breaker and
// returns how long it was open.
func (b *breaker) probed(ok bool) (openFor time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.fails.Store(0)
		b.state.Store(breakerClosed)
		return time.Since(b.openedAt)
	}
	b.wait = min(2*b.wait, b.maxWait)
	b.retryAt.Store(time.Now().Add(jitter(b.wait)).UnixNano())
	b.state.Store(breakerOpen)
	return 0
}

// isOpen reports whether operations are being skipped.
func (b *breaker) isOpen() bool { return b.state.Load() != breakerClosed }

// jitter spreads d by up to a tenth either way, so that the clients of one
// server do not all probe it at once.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + rand.N(d/5+1)
}
