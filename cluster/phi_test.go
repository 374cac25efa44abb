package cluster

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// feed sends count heartbeats at interval ± jitter (uniform) from start,
// returning the time of the last one; it checks phi just before each
// arrival and returns the highest value seen.
func feed(t *testing.T, d *PhiDetector, peer string, start time.Time, count int, interval, jitter time.Duration, r *rand.Rand) (last time.Time, maxPhi float64) {
	t.Helper()
	at := start
	for i := range count {
		if i > 0 {
			j := time.Duration(0)
			if jitter > 0 {
				j = time.Duration(r.Int64N(int64(2*jitter))) - jitter
			}
			at = at.Add(interval + j)
			maxPhi = math.Max(maxPhi, d.Phi(peer, at))
		}
		if err := d.Heartbeat(peer, at); err != nil {
			t.Fatal(err)
		}
	}
	return at, maxPhi
}

func TestPhiFormula(t *testing.T) {
	// The figures quoted in PhiConfig.MinStdDev's comment: mean 100 ms,
	// deviation 50 ms.
	ms := float64(time.Millisecond)
	for _, c := range []struct{ elapsed, want float64 }{
		{100, 0.30}, {200, 1.64}, {300, 4.74}, {400, 10.78},
	} {
		if got := phi(c.elapsed*ms, 100*ms, 50*ms); math.Abs(got-c.want) > 0.01 {
			t.Errorf("phi(%v ms) = %.3f, want %.2f", c.elapsed, got, c.want)
		}
	}
	// Far in the tail it stays finite and keeps growing.
	a, b := phi(60_000*ms, 100*ms, 50*ms), phi(120_000*ms, 100*ms, 50*ms)
	if math.IsInf(a, 0) || math.IsNaN(a) || !(b > a) {
		t.Errorf("phi in the far tail: %v then %v, want finite and increasing", a, b)
	}
	if p := phi(0, 100*ms, 50*ms); p < 0 || p > 0.01 {
		t.Errorf("phi right after a heartbeat = %v, want about 0", p)
	}
}

func TestPhiLowWithJitteredHeartbeats(t *testing.T) {
	d := NewPhiDetector(PhiConfig{})
	r := rand.New(rand.NewPCG(1, 2))
	_, maxPhi := feed(t, d, "a", t0, 1000, 100*time.Millisecond, 30*time.Millisecond, r)
	if maxPhi > 1 {
		t.Fatalf("max phi with 100ms ± 30ms heartbeats = %.2f, want < 1", maxPhi)
	}
}

func TestPhiRisesWhenHeartbeatsStop(t *testing.T) {
	d := NewPhiDetector(PhiConfig{})
	r := rand.New(rand.NewPCG(3, 4))
	last, _ := feed(t, d, "a", t0, 300, 100*time.Millisecond, 20*time.Millisecond, r)
	prev := -1.0
	crossed := time.Duration(0)
	for el := time.Duration(0); el <= 2*time.Second; el += 10 * time.Millisecond {
		p := d.Phi("a", last.Add(el))
		if p < prev {
			t.Fatalf("phi fell from %.3f to %.3f at %v without a heartbeat", prev, p, el)
		}
		prev = p
		if crossed == 0 && d.Suspect("a", last.Add(el)) {
			crossed = el
		}
	}
	if crossed == 0 || crossed > time.Second || crossed < 200*time.Millisecond {
		t.Fatalf("phi crossed the threshold %v after the last heartbeat, want within (200ms, 1s]", crossed)
	}
	t.Logf("phi crossed %v after %v of silence", d.Config().Threshold, crossed)

	// Heartbeats resume: phi is low at once and stays low.
	resume := last.Add(1500 * time.Millisecond)
	if err := d.Heartbeat("a", resume); err != nil {
		t.Fatal(err)
	}
	if p := d.Phi("a", resume.Add(10*time.Millisecond)); p > 0.5 {
		t.Fatalf("phi right after heartbeats resumed = %.2f", p)
	}
	_, maxPhi := feed(t, d, "a", resume, 100, 100*time.Millisecond, 20*time.Millisecond, r)
	if maxPhi > 1 || d.Suspect("a", resume.Add(100*100*time.Millisecond)) {
		t.Fatalf("after resuming, max phi %.2f; want regular heartbeats to stay below 1", maxPhi)
	}
}

func TestPhiFirstHeartbeatAndUnknownPeer(t *testing.T) {
	d := NewPhiDetector(PhiConfig{})
	if p := d.Phi("nobody", t0); p != 0 || d.Suspect("nobody", t0.Add(time.Hour)) {
		t.Fatalf("unknown peer has phi %v", p)
	}
	if err := d.Heartbeat("a", t0); err != nil {
		t.Fatal(err)
	}
	// Seeded with mean 100ms and deviation 25ms (floored at 50ms).
	if p := d.Phi("a", t0.Add(100*time.Millisecond)); p > 0.5 {
		t.Fatalf("phi one estimated interval after the first heartbeat = %.2f", p)
	}
	if !d.Suspect("a", t0.Add(time.Second)) {
		t.Fatalf("phi a second after a lone heartbeat = %.2f, want suspect", d.Phi("a", t0.Add(time.Second)))
	}
}

func TestPhiAdaptsToNewRhythm(t *testing.T) {
	d := NewPhiDetector(PhiConfig{WindowSize: 50})
	last, _ := feed(t, d, "a", t0, 100, 100*time.Millisecond, 0, nil)
	// The peer slows to one heartbeat a second; once the window holds
	// only the new rhythm, a second of silence is normal again.
	last, _ = feed(t, d, "a", last.Add(time.Second), 60, time.Second, 0, nil)
	if p := d.Phi("a", last.Add(time.Second)); p > 1 {
		t.Fatalf("after adapting to 1s heartbeats, phi at 1s = %.2f", p)
	}
	if !d.Suspect("a", last.Add(5*time.Second)) {
		t.Fatal("5s of silence at a 1s rhythm is not suspect")
	}
	p := d.peers["a"]
	if p.n != 50 {
		t.Fatalf("window holds %d intervals, want 50", p.n)
	}
	// The running sums match a recomputation (no drift).
	var sum float64
	for _, v := range p.ring {
		sum += v
	}
	if math.Abs(sum-p.sum) > 1 {
		t.Fatalf("running sum %v, recomputed %v", p.sum, sum)
	}
}

func TestPhiAcceptablePause(t *testing.T) {
	d := NewPhiDetector(PhiConfig{AcceptablePause: time.Second})
	last, _ := feed(t, d, "a", t0, 100, 100*time.Millisecond, 0, nil)
	if d.Suspect("a", last.Add(time.Second)) {
		t.Fatal("a pause within AcceptablePause is suspect")
	}
	if !d.Suspect("a", last.Add(2*time.Second)) {
		t.Fatal("a pause well beyond AcceptablePause is not suspect")
	}
}

func TestPhiBoundsAndForget(t *testing.T) {
	d := NewPhiDetector(PhiConfig{MaxPeers: 2})
	for _, p := range []string{"a", "b"} {
		if err := d.Heartbeat(p, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Heartbeat("c", t0); !errors.Is(err, ErrTooManyPeers) {
		t.Fatalf("third peer: %v, want ErrTooManyPeers", err)
	}
	if err := d.Heartbeat("a", t0.Add(time.Second)); err != nil {
		t.Fatalf("known peer refused at the limit: %v", err)
	}
	d.Forget("a")
	if d.Phi("a", t0.Add(time.Hour)) != 0 {
		t.Fatal("forgotten peer still has a history")
	}
	if err := d.Heartbeat("c", t0); err != nil || d.Peers() != 2 {
		t.Fatalf("after Forget: %v, %d peers", err, d.Peers())
	}
}

func TestPhiIgnoresReorderedHeartbeats(t *testing.T) {
	d := NewPhiDetector(PhiConfig{})
	last, _ := feed(t, d, "a", t0, 50, 100*time.Millisecond, 0, nil)
	before := d.Phi("a", last.Add(300*time.Millisecond))
	_ = d.Heartbeat("a", last.Add(-50*time.Millisecond))
	_ = d.Heartbeat("a", last)
	if after := d.Phi("a", last.Add(300*time.Millisecond)); after != before {
		t.Fatalf("stale heartbeats changed phi from %v to %v", before, after)
	}
}

func TestPhiConcurrent(t *testing.T) {
	d := NewPhiDetector(PhiConfig{WindowSize: 16})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			peer := string(rune('a' + g%2))
			for i := range 2000 {
				at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
				_ = d.Heartbeat(peer, at)
				_ = d.Phi(peer, at.Add(50*time.Millisecond))
				if i%500 == 0 {
					d.Forget(peer)
				}
			}
		}()
	}
	wg.Wait()
	if d.Peers() > 2 {
		t.Fatalf("%d peers, want at most 2", d.Peers())
	}
}
