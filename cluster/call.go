package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/arbor-rpc/arbor"
)

// Call implements arbor.Caller: it sends req to a member the balancer
// picks among those the filters allow and the failure detector trusts,
// and tries others as the RetryPolicy says. A request whose arguments use
// promises goes to the member that holds their answers.
func (c *Client) Call(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
	if b := req.Bound(); b != nil { // a promise chain stays where its answers are
		return b.Call(ctx, req)
	}
	o := optsOf(ctx)
	filter := c.cfg.Filter
	if o.hasFilter {
		filter = filter.and(o.filter)
	}
	if filter.bad != "" {
		return nil, arbor.Errorf(arbor.InvalidArgument, "cluster: %s", filter.bad)
	}
	bal := c.cfg.Balancer
	if o.balancer != nil {
		bal = o.balancer
	}
	c.budget.deposit()
	unary := !req.Kind.IsStream() && !req.Async
	attempts := c.cfg.Retry.MaxAttempts
	if o.member != "" {
		attempts = 1
	}
	var tried [8]string
	excluded := tried[:0]
	var lastErr error
	backoff := c.cfg.Retry.Backoff
	for attempt := 0; attempt < attempts; attempt++ {
		n, err := c.pick(filter, bal, o.key, o.member, excluded)
		if err != nil {
			if lastErr != nil {
				return nil, c.exhausted(lastErr, excluded)
			}
			return nil, err
		}
		excluded = append(excluded, n.name)
		resp, idem, err := c.attemptOrHedge(ctx, req, n, o, unary, filter, bal, &excluded)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, err
		}
		switch {
		case refusedBefore(err):
			// It never ran: elsewhere, whatever the function.
		case lostInFlight(err) && unary && idem:
			if !c.budget.withdraw() {
				c.refused(req.ID)
				return nil, err
			}
		default:
			return nil, err
		}
		if attempt+1 < attempts {
			c.retried(req.ID)
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil, err
			}
			backoff = min(2*backoff, c.cfg.Retry.MaxBackoff)
		}
	}
	return nil, c.exhausted(lastErr, excluded)
}

// exhausted says which members a call was tried on.
func (c *Client) exhausted(err error, tried []string) error {
	e, ok := err.(*arbor.Error)
	if !ok || len(tried) < 2 {
		return err
	}
	out := *e
	out.Message = fmt.Sprintf("%s (tried %s)", e.Message, strings.Join(tried, ", "))
	return &out
}

// attemptOrHedge makes one attempt on n, hedged onto a second member when
// the call is an idempotent unary one and hedging is on. idem reports
// whether the function is idempotent.
func (c *Client) attemptOrHedge(ctx context.Context, req *arbor.Request, n *memberConn, o callOpts, unary bool, filter Filter, bal Balancer, excluded *[]string) (*arbor.Response, bool, error) {
	cl, err := c.conn(ctx, n)
	if err != nil {
		return nil, false, err
	}
	idem := o.idempotent || (unary && c.idempotent(ctx, n, cl, req.ID))
	delay := c.cfg.Hedge.Delay
	if delay < 0 {
		delay = max(c.latency.percentile95(), c.cfg.Hedge.MinDelay)
		if c.latency.percentile95() == 0 {
			delay = 0 // no history yet
		}
	}
	if !unary || !idem || delay <= 0 || o.member != "" {
		resp, err := c.attempt(ctx, req, n, cl)
		return resp, idem, err
	}
	type result struct {
		resp *arbor.Response
		err  error
	}
	// The attempts run on goroutines that may outlive this call (the loser
	// stops when it sees hctx, not before): they send a copy of the
	// arguments, which the caller may reuse once Call returns.
	own := *req
	own.Args = bytes.Clone(req.Args)
	req = &own
	hctx, cancel := context.WithCancel(ctx)
	defer cancel() // the loser stops
	results := make(chan result, 2)
	go func() {
		r, err := c.attempt(hctx, req, n, cl)
		results <- result{r, err}
	}()
	t := time.NewTimer(delay)
	select {
	case r := <-results:
		t.Stop()
		return r.resp, idem, r.err
	case <-t.C:
	}
	second, err := c.pick(filter, bal, o.key, "", *excluded)
	if err != nil { // nobody else to ask: wait for the first
		r := <-results
		return r.resp, idem, r.err
	}
	cl2, err := c.conn(ctx, second)
	if err != nil {
		r := <-results
		return r.resp, idem, r.err
	}
	*excluded = append(*excluded, second.name)
	c.hedges.Add(1)
	if r := c.cfg.Recorder; r != nil {
		r.Hedged(req.ID)
	}
	go func() {
		r, err := c.attempt(hctx, req, second, cl2)
		results <- result{r, err}
	}()
	r := <-results
	if r.err == nil {
		return r.resp, idem, nil
	}
	r2 := <-results // the other may still succeed
	if r2.err == nil {
		return r2.resp, idem, nil
	}
	return nil, idem, r.err
}

// attempt sends req once through member n's connection.
func (c *Client) attempt(ctx context.Context, req *arbor.Request, n *memberConn, cl *arbor.Client) (*arbor.Response, error) {
	r := *req                                                 // each attempt its own copy: the client adds to Metadata
	r.Metadata = r.Metadata[:len(r.Metadata):len(r.Metadata)] // so appends never share an array
	n.stats.Start()
	start := time.Now()
	resp, err := cl.Call(ctx, &r)
	now := time.Now()
	rtt := now.Sub(start)
	n.stats.Done(rtt, now)
	if err == nil {
		if !req.Kind.IsStream() && !req.Async && c.cfg.Hedge.Delay < 0 {
			c.latency.add(rtt)
		}
		return resp, nil
	}
	if refusedBefore(err) {
		n.markDown()
	}
	return nil, err
}

// markDown makes the client skip a member that refused a connection for
// a short while (the detector does the rest).
func (n *memberConn) markDown() {
	n.mu.Lock()
	n.downs++
	n.downUntil.Store(time.Now().Add(min(time.Duration(1<<min(n.downs, 6))*50*time.Millisecond, 2*time.Second)).UnixNano())
	n.mu.Unlock()
}

// refusedBefore reports an error for a call that never ran on a server:
// no connection, the server going away, its call limit.
func refusedBefore(err error) bool {
	var e *arbor.Error
	if !errors.As(err, &e) {
		return false
	}
	return (e.Code == arbor.Unavailable && e.Retryable) || (e.Code == arbor.ResourceExhausted && strings.Contains(e.Message, "concurrent calls"))
}

// lostInFlight reports an error for a call whose member died or went
// silent while it ran: the call may or may not have taken effect.
func lostInFlight(err error) bool {
	var e *arbor.Error
	return errors.As(err, &e) && e.Code == arbor.Unavailable && !e.Retryable
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)/2+1))
}

// sleepCtx sleeps d, or less if ctx ends (then it reports false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pick chooses a member for a call: matching filter (or named), alive,
// trusted by the failure detector, not recently unreachable, not tried
// yet. Members the detector suspects are a last resort.
func (c *Client) pick(filter Filter, bal Balancer, key, name string, excluded []string) (*memberConn, error) {
	return c.pickAt(filter, bal, key, name, excluded, time.Now())
}

func (c *Client) pickAt(filter Filter, bal Balancer, key, name string, excluded []string, now time.Time) (*memberConn, error) {
	cc := c.candidates(filter)
	if len(cc.members) == 0 {
		if name != "" {
			return nil, arbor.Errorf(arbor.Unavailable, "cluster: no member named %q", name)
		}
		return nil, arbor.Errorf(arbor.Unavailable, "cluster: no member matches %s", describeFilter(filter))
	}
	// Most calls exclude nobody: the cached candidate list goes to the
	// balancer as is, with no copy (a copy would escape to the heap
	// through the Balancer interface).
	excludes := false
	for _, m := range cc.members {
		if (name != "" && m.name != name) || contains(excluded, m.name) || m.isDown(now) || c.suspect(m, now) {
			excludes = true
			break
		}
	}
	cands, which := cc.cands, []int(nil)
	if excludes {
		cands = nil
		var suspects []int
		for i, m := range cc.members {
			if (name != "" && m.name != name) || contains(excluded, m.name) || m.isDown(now) {
				continue
			}
			if c.suspect(m, now) {
				suspects = append(suspects, i)
				continue
			}
			cands = append(cands, cc.cands[i])
			which = append(which, i)
		}
		if len(cands) == 0 {
			for _, i := range suspects {
				cands = append(cands, cc.cands[i])
				which = append(which, i)
			}
		}
		if len(cands) == 0 {
			return nil, arbor.Errorf(arbor.Unavailable, "cluster: every member matching %s is unreachable or already tried", describeFilter(filter))
		}
	}
	i := bal.Pick(cands, key)
	if i < 0 {
		return nil, arbor.Errorf(arbor.Unavailable, "cluster: the balancer chose no member")
	}
	if which != nil {
		i = which[i]
	}
	return cc.members[i], nil
}

// anyLeft reports whether pick could still choose a member matching
// filter that is not in excluded (suspects included), without asking the
// balancer.
func (c *Client) anyLeft(filter Filter, excluded []string, now time.Time) bool {
	for _, m := range c.candidates(filter).members {
		if !contains(excluded, m.name) && !m.isDown(now) {
			return true
		}
	}
	return false
}

func describeFilter(f Filter) string {
	if f.IsZero() {
		return "(any member)"
	}
	return fmt.Sprintf("tags %q", f.String())
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (n *memberConn) isDown(now time.Time) bool { return now.UnixNano() < n.downUntil.Load() }

// suspect asks the detector about m, at most every few milliseconds.
func (c *Client) suspect(m *memberConn, now time.Time) bool {
	if at := m.suspectAt.Load(); now.UnixNano()-at < int64(5*time.Millisecond) {
		return m.suspected.Load()
	}
	s := c.phi.Suspect(m.name, now)
	m.suspected.Store(s)
	m.suspectAt.Store(now.UnixNano())
	if s {
		c.probe(m, now)
	}
	return s
}

// probeInterval is how often a suspected member is called to see whether
// it answers again.
const probeInterval = 500 * time.Millisecond

// probe calls a suspected member in the background, at most every
// probeInterval. A suspect is not picked while others are trusted, and a
// member that is not picked makes no calls: without this, a member whose
// connection broke (a network blip, a restarted server) would never be
// dialed again, so its heartbeats would never resume and it would stay out
// of rotation for as long as it stayed a member.
func (c *Client) probe(m *memberConn, now time.Time) {
	last := m.probeAt.Load()
	if now.UnixNano()-last < int64(probeInterval) || !m.probeAt.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if !m.mu.TryLock() { // a dial is under way
		return
	}
	cl := m.client
	m.mu.Unlock()
	if cl == nil {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(c.life, c.cfg.KeepAliveTimeout)
		defer cancel()
		if _, err := cl.Catalog(ctx); err != nil {
			return
		}
		c.mu.Lock()
		current := c.nodes[m.name] == m
		c.mu.Unlock()
		if !current { // it left meanwhile: the detector forgot it
			return
		}
		// It answers: the silence is over, and not a sample of its rhythm.
		c.phi.Forget(m.name)
		c.phi.Heartbeat(m.name, time.Now())
		m.suspectAt.Store(0)
	}()
}

// candidates is the cached list of alive members matching filter.
func (c *Client) candidates(filter Filter) *candidateCache {
	v := c.reg.Version()
	if filter.IsZero() { // the common case: no filter, no string to build
		if cc := c.cands.Load(); cc != nil && cc.version == v && cc.filter == "" {
			return cc
		}
	}
	fs := ""
	if !filter.IsZero() {
		fs = filter.String() + "\x00" + filter.bad
	}
	if cc := c.cands.Load(); cc != nil && cc.version == v && cc.filter == fs {
		return cc
	}
	cc := &candidateCache{version: v, filter: fs}
	for _, m := range c.reg.Members(filter) {
		if m.State != StateAlive {
			continue
		}
		n := c.node(m)
		if n == nil {
			continue
		}
		cc.members = append(cc.members, n)
		cc.cands = append(cc.cands, Candidate{Name: n.name, Stats: &n.stats})
	}
	c.cands.Store(cc)
	return cc
}

var _ arbor.Caller = (*Client)(nil)
