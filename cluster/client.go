package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor"
)

// ClientConfig configures a cluster client. Start from DefaultClientConfig;
// zero fields take its values.
type ClientConfig struct {
	// Seeds are RPC addresses (tcp://host:port, ...) of members; the
	// client learns the rest of the cluster from the first that answers.
	Seeds []string
	// Options apply to every connection the client makes to a member
	// (TLS, a bearer token, interceptors).
	Options []arbor.ClientOption
	// Filter selects the members calls go to (tags, all-of); a call can
	// narrow it with WithTags.
	Filter Filter
	// Balancer picks among the eligible members (default power of two
	// choices over peak-EWMA latency); a call can change it with
	// WithBalancer.
	Balancer Balancer
	// KeepAlive is the heartbeat interval on each member connection
	// (default 100 ms): the phi-accrual detector listens to it.
	KeepAlive time.Duration
	// KeepAliveTimeout closes a member connection that stays silent this
	// long (default 2 s): the detector takes a silent member out of
	// rotation long before.
	KeepAliveTimeout time.Duration
	// Phi configures the failure detector.
	Phi PhiConfig
	// Retry bounds retries.
	Retry RetryPolicy
	// Hedge sends a second copy of an idempotent call when the first is
	// slow; off by default.
	Hedge HedgePolicy
	// Logger receives membership changes and connection trouble.
	Logger *slog.Logger
	// Recorder, when set, is told of every retry, hedge and retry the
	// budget refused, by function: metrics.Metrics.Cluster() is one.
	Recorder Recorder
}

// Recorder counts what a cluster client does beyond one attempt per call.
type Recorder interface {
	Retried(function string)
	Hedged(function string)
	RetryBudgetRefused(function string)
}

// RetryPolicy says how a failed call is tried again on another member. A
// call refused before a server accepted it (no connection, the server
// going away) is always tried elsewhere, within the call's deadline; a
// call that was running when its member died is tried again only if its
// function is idempotent (declared with arbor.Idempotent, or a cached
// request-tree level, or the call carries WithIdempotent), and only within
// the retry budget.
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one call (default 4).
	MaxAttempts int
	// Backoff is the first pause between attempts (default 5 ms); it
	// doubles per attempt up to MaxBackoff (default 500 ms), with jitter.
	Backoff, MaxBackoff time.Duration
	// BudgetRatio is the fraction of calls that may be retries (default
	// 0.2), and BudgetMin the retries always allowed per second (default
	// 10): a dying cluster is not stormed with retries. Refusals before a
	// server accepted the call do not draw on it.
	BudgetRatio float64
	BudgetMin   float64
}

// HedgePolicy sends a second copy of a slow idempotent unary call to
// another member; the first answer wins and the other copy is cancelled.
type HedgePolicy struct {
	// Delay is how long the first copy runs before the second is sent.
	// Zero: no hedging. Negative: the 95th percentile of recent latencies
	// (at least MinDelay).
	Delay time.Duration
	// MinDelay bounds an adaptive delay from below (default 1 ms).
	MinDelay time.Duration
}

// DefaultClientConfig returns the defaults, spelled out.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		KeepAlive:        100 * time.Millisecond,
		KeepAliveTimeout: 2 * time.Second,
		Phi:              DefaultPhiConfig(),
		Retry:            RetryPolicy{MaxAttempts: 4, Backoff: 5 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, BudgetRatio: 0.2, BudgetMin: 10},
		Hedge:            HedgePolicy{MinDelay: time.Millisecond},
	}
}

func (c ClientConfig) withDefaults() ClientConfig {
	d := DefaultClientConfig()
	if c.KeepAlive <= 0 {
		c.KeepAlive = d.KeepAlive
	}
	if c.KeepAliveTimeout <= 0 {
		c.KeepAliveTimeout = d.KeepAliveTimeout
	}
	if c.Phi == (PhiConfig{}) {
		c.Phi = d.Phi
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry.MaxAttempts = d.Retry.MaxAttempts
	}
	if c.Retry.Backoff <= 0 {
		c.Retry.Backoff = d.Retry.Backoff
	}
	if c.Retry.MaxBackoff <= 0 {
		c.Retry.MaxBackoff = d.Retry.MaxBackoff
	}
	if c.Retry.BudgetRatio <= 0 {
		c.Retry.BudgetRatio = d.Retry.BudgetRatio
	}
	if c.Retry.BudgetMin <= 0 {
		c.Retry.BudgetMin = d.Retry.BudgetMin
	}
	if c.Hedge.MinDelay <= 0 {
		c.Hedge.MinDelay = d.Hedge.MinDelay
	}
	if c.Balancer == nil {
		c.Balancer = NewP2C(nil, nil)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Client calls the members of a cluster. It is an arbor.Caller, so every
// typed call, promise, stream and request-tree helper works through it: a
// call goes to a member chosen by the balancer among those whose tags
// match and that the failure detector trusts, and fails over as the
// RetryPolicy says. It follows the membership through the members stream
// of one member at a time (it does not gossip), and keeps one connection
// per member it uses. Close it when done.
type Client struct {
	cfg     ClientConfig
	reg     Registry
	phi     *PhiDetector
	budget  retryBudget
	latency latencyWindow

	mu     sync.Mutex
	nodes  map[string]*memberConn
	closed bool

	// clock is the latest time a call read, for the balancer's cost
	// estimates: one clock read per call instead of several.
	clock atomic.Int64

	life   context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	synced chan struct{} // closed at the first member list
	once   sync.Once

	cands atomic.Pointer[candidateCache]

	// slowPath: the member connections are not plain (interceptors, a
	// token), so typed calls go through Call, not Route's fast path.
	slowPath atomic.Bool
	// idemIDs are the functions found idempotent, which Route hands to
	// Call at once when hedging is on.
	idemIDs sync.Map // string → struct{}

	// Counters, for tests and metrics.
	retries, hedges, refusals atomic.Int64
}

// memberConn is what the client keeps of one member.
type memberConn struct {
	name  string
	addrs []string
	stats Stats
	// idem caches the member's catalog: which functions it says are
	// idempotent (fetched on first need, again after a failed fetch).
	catMu    sync.Mutex
	idem     atomic.Pointer[map[string]bool]
	catRetry time.Time // a fetch failed: not again before then (under catMu)

	// The detector's last verdict, cached for a few milliseconds.
	suspected atomic.Bool
	suspectAt atomic.Int64

	downUntil atomic.Int64 // a dial failed: skip it until then (Unix ns)
	probeAt   atomic.Int64 // when it was last probed as a suspect (Unix ns)

	mu     sync.Mutex
	client *arbor.Client // nil until first used
	downs  int
}

// candidateCache is the members of one registry version that calls may go
// to, for one filter.
type candidateCache struct {
	version uint64
	filter  string
	members []*memberConn
	cands   []Candidate
}

// Dial connects to the cluster that seeds belong to, with the default
// configuration.
func Dial(ctx context.Context, seeds ...string) (*Client, error) {
	cfg := DefaultClientConfig()
	cfg.Seeds = seeds
	return DialConfig(ctx, cfg)
}

// DialConfig connects to a cluster: it returns once a seed has sent the
// member list, or fails naming every seed it tried.
func DialConfig(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if len(cfg.Seeds) == 0 {
		return nil, fmt.Errorf("%w: a cluster client needs at least one seed address", ErrConfig)
	}
	if cfg.Balancer == nil {
		cfg.Balancer = NewP2C(nil, nil) // replaced below by one on the client's clock
	}
	c := &Client{cfg: cfg.withDefaults(), nodes: map[string]*memberConn{}, synced: make(chan struct{})}
	if p, ok := c.cfg.Balancer.(*P2C); ok && cfg.Balancer == c.cfg.Balancer && p.now != nil {
		c.cfg.Balancer = NewP2C(nil, c.now)
	}
	c.phi = NewPhiDetector(c.cfg.Phi)
	c.budget.init(c.cfg.Retry)
	c.life, c.stop = context.WithCancel(context.Background())
	errs := make(chan error, 1)
	c.wg.Add(1)
	go c.follow(errs)
	select {
	case <-c.synced:
		return c, nil
	case err := <-errs:
		c.Close()
		return nil, err
	case <-ctx.Done():
		c.Close()
		// The caller's context ended first: its code (DeadlineExceeded,
		// Canceled) is what happened, the seeds' silence why.
		e := arbor.Errorf(arbor.CodeOf(ctx.Err()), "cluster: no member list from seeds %s: %v", strings.Join(cfg.Seeds, ", "), ctx.Err())
		e.Cause = ctx.Err()
		return nil, e
	}
}

// now is the client's clock: the time the latest call read.
func (c *Client) now() time.Time {
	if t := c.clock.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Now()
}

// Close closes every member connection.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	nodes := c.nodes
	c.nodes = map[string]*memberConn{}
	c.mu.Unlock()
	c.stop()
	c.wg.Wait()
	for _, m := range nodes {
		m.close()
	}
	return nil
}

// Members is the membership as the client last heard it.
func (c *Client) Members() []Member { return c.reg.Members(Filter{}) }

// Phi is the failure detector's suspicion of a member (0 for one with no
// heartbeats yet).
func (c *Client) Phi(name string) float64 { return c.phi.Phi(name, time.Now()) }

func (c *Client) retried(id string) {
	c.retries.Add(1)
	if r := c.cfg.Recorder; r != nil {
		r.Retried(id)
	}
}

func (c *Client) refused(id string) {
	c.refusals.Add(1)
	if r := c.cfg.Recorder; r != nil {
		r.RetryBudgetRefused(id)
	}
}

// Counters reports how many retries and hedges the client sent and how
// many retries the budget refused.
func (c *Client) Counters() (retries, hedges, budgetRefusals int64) {
	return c.retries.Load(), c.hedges.Load(), c.refusals.Load()
}

// ---- following the membership ----

// follow keeps a members stream open to one member at a time, trying the
// known members and the seeds in turn, and applies every list it gets.
func (c *Client) follow(first chan<- error) {
	defer c.wg.Done()
	backoff := 50 * time.Millisecond
	var lastErrs []string
	for c.life.Err() == nil {
		progressed := false
		for _, addr := range c.followAddrs() {
			got, err := c.followOne(addr)
			if got {
				progressed, backoff = true, 50*time.Millisecond
			}
			if c.life.Err() != nil {
				return
			}
			if err != nil {
				lastErrs = append(lastErrs[:0:0], addr+": "+err.Error())
				c.cfg.Logger.Debug("cluster: members stream ended", "addr", addr, "err", err)
			}
		}
		select {
		case <-c.synced:
		default:
			if !progressed {
				first <- arbor.Errorf(arbor.Unavailable, "cluster: no seed answered: %s", strings.Join(lastErrs, "; "))
				return
			}
		}
		if !progressed {
			backoff = min(2*backoff, 2*time.Second)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-c.life.Done():
			t.Stop()
			return
		}
	}
}

// followAddrs lists where to ask for the member list: known members
// first (their first address), then the seeds.
func (c *Client) followAddrs() []string {
	var out []string
	for _, m := range c.reg.Members(Filter{}) {
		if len(m.RPCAddrs) > 0 && m.State == StateAlive {
			out = append(out, m.RPCAddrs[0])
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	for _, s := range c.cfg.Seeds {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// followOne reads member lists from the member at addr until its stream
// ends; got says whether at least one arrived.
func (c *Client) followOne(addr string) (got bool, err error) {
	ctx, cancel := context.WithCancel(c.life)
	defer cancel()
	opts := append(slices.Clip(c.cfg.Options), arbor.WithKeepAlive(c.cfg.KeepAlive, c.cfg.KeepAliveTimeout))
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := arbor.Dial(dctx, addr, opts...)
	dcancel()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if !conn.Plain() { // the same options as the members' connections
		c.slowPath.Store(true)
	}
	s, err := arbor.CallServerStream[[]MemberInfo](ctx, conn, MembersID, struct{}{})
	if err != nil {
		return false, err
	}
	defer s.Close()
	for {
		infos, err := s.Recv()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the member ended the stream")
			}
			return got, err
		}
		got = true
		c.apply(infos)
		c.once.Do(func() { close(c.synced) })
	}
}

// apply installs a member list.
func (c *Client) apply(infos []MemberInfo) {
	ms := make([]Member, 0, len(infos))
	for _, in := range infos {
		st, ok := parseState(in.State)
		if !ok || len(in.RPCAddrs) == 0 {
			continue
		}
		ms = append(ms, Member{Name: in.Name, RPCAddrs: in.RPCAddrs, Tags: in.Tags, Load: in.Load, State: st})
	}
	c.reg.Replace(ms)
	live := make(map[string][]string, len(ms))
	for _, m := range ms {
		live[m.Name] = m.RPCAddrs
	}
	c.mu.Lock()
	var gone []*memberConn
	for name, m := range c.nodes {
		// A member that moved (restarted under its name with new RPC
		// addresses) is dropped too: its record dials the old ones.
		if addrs, ok := live[name]; !ok || !slices.Equal(addrs, m.addrs) {
			gone = append(gone, m)
			delete(c.nodes, name)
		}
	}
	c.mu.Unlock()
	for _, m := range gone {
		c.phi.Forget(m.name)
		m.close()
	}
}

func parseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s {
			return State(i), true
		}
	}
	return 0, false
}

// ---- members' connections ----

// node returns the client's record of a member, made on first use.
func (c *Client) node(m Member) *memberConn {
	c.mu.Lock()
	n := c.nodes[m.Name]
	var moved *memberConn
	if n != nil && !slices.Equal(n.addrs, m.RPCAddrs) { // see apply
		moved, n = n, nil
		delete(c.nodes, m.Name)
	}
	if n == nil && !c.closed {
		n = &memberConn{name: m.Name, addrs: m.RPCAddrs}
		n.stats = *NewStats(DefaultDecay)
		c.nodes[m.Name] = n
	}
	c.mu.Unlock()
	if moved != nil {
		moved.close()
	}
	return n
}

// conn returns the member's connection, dialing it on first use.
func (c *Client) conn(ctx context.Context, n *memberConn) (*arbor.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.client != nil {
		return n.client, nil
	}
	if n.isDown(time.Now()) {
		return nil, refusedError(n.name, errors.New("recently unreachable"))
	}
	name := n.name
	opts := append(slices.Clip(c.cfg.Options),
		arbor.WithKeepAlive(c.cfg.KeepAlive, c.cfg.KeepAliveTimeout),
		arbor.WithHeartbeat(func(rtt time.Duration) {
			now := time.Now()
			c.phi.Heartbeat(name, now)
			n.stats.Observe(rtt, now)
		}))
	var lastErr error
	for _, addr := range n.addrs {
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		cl, err := arbor.Dial(dctx, addr, opts...)
		cancel()
		if err == nil {
			if !cl.Plain() {
				c.slowPath.Store(true)
			}
			n.client, n.downs = cl, 0
			c.phi.Heartbeat(name, time.Now()) // connected: alive now
			return cl, nil
		}
		lastErr = err
	}
	n.downs++
	n.downUntil.Store(time.Now().Add(min(time.Duration(1<<min(n.downs, 6))*50*time.Millisecond, 2*time.Second)).UnixNano())
	return nil, refusedError(n.name, lastErr)
}

func (n *memberConn) close() {
	n.mu.Lock()
	cl := n.client
	n.client = nil
	n.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
}

// refusedError is the error of a call that never reached a server.
func refusedError(name string, err error) error {
	return &arbor.Error{Code: arbor.Unavailable, Category: arbor.ErrConnection, Retryable: true,
		Message: fmt.Sprintf("member %s: %v", name, err), Cause: err}
}

// idempotent reports whether member n says function id is idempotent
// (its catalog, fetched once) or id is a cached request-tree level,
// which is pure by definition.
func (c *Client) idempotent(ctx context.Context, n *memberConn, cl *arbor.Client, id string) bool {
	if i := strings.LastIndexByte(id, '+'); i >= 0 {
		switch id[i+1:] {
		case "mem", "full", "mem_vb", "full_vb":
			return true
		}
	}
	if m := n.idem.Load(); m != nil {
		return (*m)[id]
	}
	n.catMu.Lock()
	defer n.catMu.Unlock()
	if m := n.idem.Load(); m != nil {
		return (*m)[id]
	}
	if time.Now().Before(n.catRetry) {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	infos, err := cl.Catalog(cctx)
	if err != nil {
		// Not remembered: the next call asks again (after a pause, unless
		// it was this call's context that ended).
		if ctx.Err() == nil {
			n.catRetry = time.Now().Add(time.Second)
		}
		return false
	}
	m := make(map[string]bool, len(infos))
	for _, f := range infos {
		if f.Idempotent {
			m[f.ID] = true
		}
	}
	n.idem.Store(&m)
	return m[id]
}
