package cluster

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// PhiConfig configures a PhiDetector. Zero fields take the defaults of
// DefaultPhiConfig, which assume a heartbeat about every 100 ms.
type PhiConfig struct {
	// WindowSize is how many recent heartbeat intervals per peer the
	// estimate is built from (default 200: 20 s of history at 100 ms).
	WindowSize int
	// MinStdDev is the floor of the estimated standard deviation. Without
	// it, a perfectly regular feed (a timer on an idle machine) gives a
	// deviation near zero and phi explodes on the first late heartbeat.
	// The default, 50 ms for a 100 ms interval, makes a silent peer cross
	// phi 8 about 360 ms after its last heartbeat: one lost or delayed
	// ping (a GC pause, a busy 2-core machine) stays far below the
	// threshold (phi 1.6 at 200 ms), two stay below it (phi 4.7 at
	// 300 ms), three in a row cross it (phi 10.8 at 400 ms).
	MinStdDev time.Duration
	// AcceptablePause is added to the mean interval: a pause this long
	// beyond the usual interval costs nothing (default 0; raise it for
	// feeds that are known to stall, such as a stop-the-world collector).
	AcceptablePause time.Duration
	// Threshold is the phi above which Suspect reports a peer (default 8:
	// the odds that a heartbeat this late is merely late are 1 in 10^8
	// under the fitted distribution).
	Threshold float64
	// FirstHeartbeatEstimate seeds a peer's history when its first
	// heartbeat arrives, as the expected interval with a deviation of a
	// quarter of it (default 100 ms), so that phi is meaningful before
	// real intervals are known.
	FirstHeartbeatEstimate time.Duration
	// MaxPeers bounds the peers tracked at once (default 4096); Heartbeat
	// for a new peer beyond it returns ErrTooManyPeers. Forget peers that
	// left the membership to make room.
	MaxPeers int
}

// DefaultPhiConfig returns the defaults for a heartbeat every 100 ms.
func DefaultPhiConfig() PhiConfig {
	return PhiConfig{
		WindowSize:             200,
		MinStdDev:              50 * time.Millisecond,
		AcceptablePause:        0,
		Threshold:              8,
		FirstHeartbeatEstimate: 100 * time.Millisecond,
		MaxPeers:               4096,
	}
}

func (c PhiConfig) withDefaults() PhiConfig {
	d := DefaultPhiConfig()
	if c.WindowSize <= 0 {
		c.WindowSize = d.WindowSize
	}
	if c.MinStdDev <= 0 {
		c.MinStdDev = d.MinStdDev
	}
	if c.AcceptablePause < 0 {
		c.AcceptablePause = 0
	}
	if c.Threshold <= 0 || math.IsNaN(c.Threshold) {
		c.Threshold = d.Threshold
	}
	if c.FirstHeartbeatEstimate <= 0 {
		c.FirstHeartbeatEstimate = d.FirstHeartbeatEstimate
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = d.MaxPeers
	}
	return c
}

// ErrTooManyPeers is returned by PhiDetector.Heartbeat for a new peer when
// PhiConfig.MaxPeers peers are already tracked.
var ErrTooManyPeers = errors.New("cluster: phi detector tracks too many peers")

// PhiDetector is a phi-accrual failure detector (Hayashibara, Défago,
// Yared, Katayama, 2004): instead of a yes/no timeout it reports, per
// peer, phi = -log10(P(a heartbeat arrives later than now)), where P comes
// from a normal distribution fitted to the recent heartbeat intervals.
// Phi grows continuously while a peer is silent, and adapts to the
// peer's own rhythm and jitter.
//
// It knows nothing about memberlist or connections: whatever observes a
// peer alive (a keep-alive PONG, a response) calls Heartbeat. Times are
// passed in, so it can be driven by explicit times in tests. It is safe
// for concurrent use; memory is bounded by WindowSize per peer and
// MaxPeers peers.
type PhiDetector struct {
	cfg PhiConfig

	mu    sync.RWMutex
	peers map[string]*phiPeer
}

// phiPeer is the history of one peer: a ring of intervals in
// nanoseconds with their running sum and sum of squares.
type phiPeer struct {
	mu     sync.Mutex
	last   time.Time
	ring   []float64
	head   int // index of the oldest interval
	n      int
	sum    float64
	sumSq  float64
	evicts int // evictions since the sums were last recomputed
}

// NewPhiDetector returns a detector with cfg (zero fields take defaults).
func NewPhiDetector(cfg PhiConfig) *PhiDetector {
	return &PhiDetector{cfg: cfg.withDefaults(), peers: make(map[string]*phiPeer)}
}

// Config returns the detector's configuration with defaults applied.
func (d *PhiDetector) Config() PhiConfig { return d.cfg }

// Heartbeat records that peer was seen alive at at. A heartbeat that is
// not later than the previous one is ignored (a reordered observation says
// nothing about the interval).
func (d *PhiDetector) Heartbeat(peer string, at time.Time) error {
	d.mu.RLock()
	p := d.peers[peer]
	d.mu.RUnlock()
	if p == nil {
		d.mu.Lock()
		if p = d.peers[peer]; p == nil {
			if len(d.peers) >= d.cfg.MaxPeers {
				d.mu.Unlock()
				return fmt.Errorf("%w: %q refused, limit %d", ErrTooManyPeers, peer, d.cfg.MaxPeers)
			}
			p = &phiPeer{ring: make([]float64, d.cfg.WindowSize)}
			d.peers[peer] = p
		}
		d.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last.IsZero() {
		// Seed the history as Akka does: two intervals around the
		// estimate, so the first mean is the estimate and the first
		// deviation a quarter of it.
		est := float64(d.cfg.FirstHeartbeatEstimate)
		p.add(est - est/4)
		p.add(est + est/4)
		p.last = at
		return nil
	}
	iv := at.Sub(p.last)
	if iv <= 0 {
		return nil
	}
	p.last = at
	p.add(float64(iv))
	return nil
}

// add appends one interval, evicting the oldest when the window is full.
func (p *phiPeer) add(iv float64) {
	if p.n == len(p.ring) {
		old := p.ring[p.head]
		p.sum -= old
		p.sumSq -= old * old
		p.ring[p.head] = iv
		p.head = (p.head + 1) % len(p.ring)
		p.evicts++
		if p.evicts >= len(p.ring) {
			// Subtracting squares accumulates rounding error over a
			// long run; recomputing once per window bounds it.
			p.evicts = 0
			p.sum, p.sumSq = 0, 0
			for _, v := range p.ring {
				p.sum += v
				p.sumSq += v * v
			}
			p.sum -= iv
			p.sumSq -= iv * iv
		}
	} else {
		p.ring[(p.head+p.n)%len(p.ring)] = iv
		p.n++
	}
	p.sum += iv
	p.sumSq += iv * iv
}

// Phi returns the suspicion level of peer at now: near 0 while heartbeats
// come on time, rising without bound while they do not. A peer never seen
// (or forgotten) has phi 0: the detector has no evidence either way.
func (d *PhiDetector) Phi(peer string, now time.Time) float64 {
	d.mu.RLock()
	p := d.peers[peer]
	d.mu.RUnlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	if p.n == 0 {
		p.mu.Unlock()
		return 0
	}
	elapsed := float64(now.Sub(p.last))
	n := float64(p.n)
	mean := p.sum / n
	variance := p.sumSq/n - mean*mean
	p.mu.Unlock()
	std := math.Sqrt(math.Max(variance, 0))
	std = math.Max(std, float64(d.cfg.MinStdDev))
	return phi(elapsed, mean+float64(d.cfg.AcceptablePause), std)
}

// phi is -log10 of the probability that a normally distributed interval
// exceeds elapsed, using the logistic approximation of the normal tail
// that Akka uses (1.5976 and 0.070566 fit the normal CDF within 1.4e-4).
// It is evaluated as softplus(z)/ln 10, which is the same quantity
// without the overflow to +Inf of the direct form.
func phi(elapsed, mean, std float64) float64 {
	y := (elapsed - mean) / std
	z := y * (1.5976 + 0.070566*y*y)
	var sp float64
	if z > 0 {
		sp = z + math.Log1p(math.Exp(-z))
	} else {
		sp = math.Log1p(math.Exp(z))
	}
	return sp / math.Ln10
}

// Suspect reports whether peer's phi at now is above the threshold.
func (d *PhiDetector) Suspect(peer string, now time.Time) bool {
	return d.Phi(peer, now) > d.cfg.Threshold
}

// Forget drops peer's history (call it when the peer leaves the
// membership); its phi is 0 until it heartbeats again.
func (d *PhiDetector) Forget(peer string) {
	d.mu.Lock()
	delete(d.peers, peer)
	d.mu.Unlock()
}

// Peers returns how many peers are tracked.
func (d *PhiDetector) Peers() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.peers)
}
