package cluster

import (
	"context"
	"time"

	"github.com/arbor-rpc/arbor"
)

// The cluster client is an arbor.Router: a plain unary call (the common
// case) takes the typed helpers' fast path on the member's own Client,
// with the choice of member, the accounting and the retries here; only
// hedged calls and calls with promises, capabilities or streams go through
// Call.

// Route implements arbor.Router.
func (c *Client) Route(ctx context.Context, id string, prev arbor.Routed) (*arbor.Client, arbor.Routed, error) {
	o := optsOf(ctx)
	filter := c.cfg.Filter
	if o.hasFilter {
		filter = filter.and(o.filter)
	}
	if filter.bad != "" {
		return nil, prev, arbor.Errorf(arbor.InvalidArgument, "cluster: %s", filter.bad)
	}
	bal := c.cfg.Balancer
	if o.balancer != nil {
		bal = o.balancer
	}
	// Calls that go through Call (member connections with interceptors or
	// a token, hedged calls) are handed over before anything is chosen or
	// counted: Call chooses again, and a pick here would advance a round
	// robin twice per call and leave a call in flight that never ends.
	if c.slowPath.Load() {
		return nil, prev, nil
	}
	if c.cfg.Hedge.Delay != 0 && o.member == "" {
		if _, known := c.idemIDs.Load(id); known || o.idempotent {
			return nil, prev, nil
		}
	}
	rt := prev
	now := time.Now()
	if t := now.UnixNano(); t-c.clock.Load() > int64(time.Millisecond) { // a shared line: write it rarely
		c.clock.Store(t)
	}
	if rt.Attempt == 0 {
		c.budget.depositAt(now)
	}
	var lastErr error
	for {
		tried := rt.State[:min(rt.Attempt, len(rt.State))]
		n, err := c.pickAt(filter, bal, o.key, o.member, tried, now)
		if err != nil {
			if lastErr != nil { // the unreachable member's error, as Call says it
				return nil, rt, c.exhausted(lastErr, tried)
			}
			return nil, rt, err
		}
		rt.State[rt.Attempt%len(rt.State)] = n.name
		cl, err := c.conn(ctx, n)
		if err != nil { // unreachable: never sent, so elsewhere
			if rt.Attempt+1 >= c.cfg.Retry.MaxAttempts || o.member != "" || ctx.Err() != nil {
				return nil, rt, err
			}
			lastErr = err
			rt.Attempt++
			continue
		}
		if c.slowPath.Load() {
			return nil, rt, nil // not plain: through Call
		}
		idem := o.idempotent || c.idempotent(ctx, n, cl, id)
		if c.cfg.Hedge.Delay != 0 && o.member == "" && idem {
			c.idemIDs.Store(id, struct{}{})
			return nil, rt, nil // hedged: through Call
		}
		rt.Extra = 0
		if idem {
			rt.Extra = 1
		}
		n.stats.Start()
		rt.Member, rt.Start = n, now
		return cl, rt, nil
	}
}

// Done implements arbor.Router.
func (c *Client) Done(ctx context.Context, id string, rt arbor.Routed, err error) bool {
	n, _ := rt.Member.(*memberConn)
	if n == nil {
		return false
	}
	now := time.Now()
	rtt := now.Sub(rt.Start)
	n.stats.Done(rtt, now)
	if err == nil {
		if c.cfg.Hedge.Delay < 0 { // an adaptive hedging delay needs the latencies
			c.latency.add(rtt)
		}
		return false
	}
	if refusedBefore(err) {
		n.markDown()
	}
	o := optsOf(ctx)
	attempts := c.cfg.Retry.MaxAttempts
	if o.member != "" {
		attempts = 1
	}
	if ctx.Err() != nil || rt.Attempt+1 >= attempts {
		return false
	}
	// With no member left to try, the next Route would fail with "already
	// tried" instead of this attempt's error: end here, with it.
	filter := c.cfg.Filter
	if o.hasFilter {
		filter = filter.and(o.filter)
	}
	if !c.anyLeft(filter, rt.State[:min(rt.Attempt+1, len(rt.State))], now) {
		return false
	}
	switch {
	case refusedBefore(err):
	case lostInFlight(err):
		if rt.Extra&1 == 0 { // not idempotent: it may have run
			return false
		}
		if !c.budget.withdraw() {
			c.refused(id)
			return false
		}
	default:
		return false
	}
	c.retried(id)
	backoff := min(c.cfg.Retry.Backoff<<min(rt.Attempt, 16), c.cfg.Retry.MaxBackoff)
	return sleepCtx(ctx, jitter(backoff))
}

var _ arbor.Router = (*Client)(nil)
