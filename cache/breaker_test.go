package cache

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBreakerOpensAtThreshold(t *testing.T) {
	b := newBreaker(3, time.Hour, time.Hour)
	for range 2 {
		if b.failure() {
			t.Fatal("opened before the threshold")
		}
	}
	b.success() // a success in between starts the count again
	for range 2 {
		b.failure()
	}
	if b.isOpen() {
		t.Fatal("opened on failures that were not in a row")
	}
	if !b.failure() || !b.isOpen() {
		t.Fatal("did not open on the third failure in a row")
	}
	if b.failure() {
		t.Fatal("a late failure reopened an open breaker")
	}
	if ok, probe := b.allow(); ok || probe {
		t.Fatalf("allow before the wait = %v, %v; want skip, no probe", ok, probe)
	}
}

// TestBreakerOneProbe: once the wait is over, exactly one of many callers
// is told to probe; the others skip until it reports.
func TestBreakerOneProbe(t *testing.T) {
	b := newBreaker(1, time.Millisecond, time.Millisecond)
	b.failure()
	time.Sleep(3 * time.Millisecond)
	var probes, allowed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				ok, probe := b.allow()
				if ok {
					allowed.Add(1)
				}
				if probe {
					probes.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if probes.Load() != 1 || allowed.Load() != 0 {
		t.Fatalf("%d probes, %d operations allowed while half-open; want 1, 0", probes.Load(), allowed.Load())
	}
	if d := b.probed(true); d <= 0 || b.isOpen() {
		t.Fatalf("a good probe: open for %v, still open %v", d, b.isOpen())
	}
	if ok, _ := b.allow(); !ok {
		t.Fatal("closed breaker skips")
	}
}

// TestBreakerBackoff: each failed probe doubles the wait, up to the cap.
func TestBreakerBackoff(t *testing.T) {
	b := newBreaker(1, 10*time.Millisecond, 35*time.Millisecond)
	b.failure()
	want := []time.Duration{20 * time.Millisecond, 35 * time.Millisecond, 35 * time.Millisecond}
	for _, w := range want {
		for {
			if _, probe := b.allow(); probe {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.probed(false)
		b.mu.Lock()
		got := b.wait
		b.mu.Unlock()
		if got != w {
			t.Fatalf("wait after a failed probe = %v, want %v", got, w)
		}
		until := time.Until(time.Unix(0, b.retryAt.Load()))
		if until < w*8/10 || until > w*12/10 {
			t.Fatalf("next probe in %v, want about %v", until, w)
		}
	}
}
