package cluster

// This file is distributed resolution of request trees: Distribute makes
// a member's resolve.Engine place each request of a tree on the member
// best placed to resolve it (policy.go), keeps a view of the members'
// catalogs and tags, and serves and calls the built-in stream that
// resolves a subtree on another member (remote.go).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
)

// DistributeConfig configures distributed resolution. The zero value is
// usable.
type DistributeConfig struct {
	// Require gives functions, by id, the tags a member needs to run them,
	// in ParseFilter's syntax ("gpu=true,zone=a"): a request for one goes
	// only to members whose catalog has it and whose tags match.
	Require map[string]string
	// Policy chooses the member among the eligible ones (default:
	// DefaultPolicy, rendezvous on the content key with a P2C fallback).
	Policy Policy
	// Client configures the connections to the other members (Options:
	// TLS, a bearer token); its Seeds default to this node's own RPC
	// addresses, and its KeepAlive to DistributeKeepAlive (not the
	// cluster client's 100 ms: see there).
	Client ClientConfig
	// CatalogTimeout bounds the fetch of one member's catalog (default
	// 2 s).
	CatalogTimeout time.Duration
	// CatalogRefresh is how often the members' catalogs are fetched again,
	// to learn of functions registered since (default 10 s); a new member's,
	// or one whose tags changed, is fetched at once.
	CatalogRefresh time.Duration
	// Logger receives placement trouble (default: the node's logger).
	Logger *slog.Logger
}

// DistributeKeepAlive is the keep-alive interval of a distributor's
// connections to the other members, unless DistributeConfig.Client sets
// one. A member's server tolerates a silent connection for twice the
// agreed interval unless it was configured otherwise (arbor's
// KeepAliveTimeout default), so the cluster client's 100 ms heartbeats
// would have every member drop a distributor's connection after 200 ms
// without a frame, which a loaded machine (a collector's pause, a
// starved process) exceeds now and then, ending every subtree in flight
// on it: the engine then moves them off their owners, which runs their
// cached requests again elsewhere and leaves the results where
// placement does not look. A distributor needs no fast heartbeats: it
// names the member of every call, and follows the membership through
// gossip, not through its client's failure detector. At 1 s, a member
// drops the connection after 2 s of silence, the client's own
// KeepAliveTimeout.
const DistributeKeepAlive = time.Second

// Distributor is distributed resolution on one member: the engine's
// resolve.Placer. Close it before the node and the engine.
type Distributor struct {
	node   *Node
	srv    *arbor.Server
	engine *resolve.Engine
	cfg    DistributeConfig
	policy Policy
	client *Client
	log    *slog.Logger
	need   map[string]Filter // parsed Require

	view     atomic.Pointer[view]
	self     Stats    // subtrees this member resolves for others, in flight
	stats    sync.Map // member name → *Stats: subtrees sent there, in flight
	refreshM sync.Mutex

	life context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
	once sync.Once
}

// Distribute turns on distributed resolution for the engine that serves
// request trees on srv (tree.Enable's), as member node: it registers the
// built-in stream ResolveID on srv, connects to the other members, and
// installs itself as the engine's placer. From then on a tree this member
// receives, from a client or from another member, resolves request by
// request where the policy says: its subtrees on the members that have
// their functions (and the tags those need), the same subtree always on
// the same member (which therefore has it cached and runs concurrent
// identical ones once), cheap functions (arbor.Local) here.
func Distribute(ctx context.Context, node *Node, srv *arbor.Server, engine *resolve.Engine, cfg DistributeConfig) (*Distributor, error) {
	if node == nil || srv == nil || engine == nil {
		return nil, fmt.Errorf("%w: Distribute needs a node, a server and an engine", ErrConfig)
	}
	d := &Distributor{node: node, srv: srv, engine: engine, cfg: cfg, policy: cfg.Policy, need: map[string]Filter{}}
	if d.policy == nil {
		d.policy = &DefaultPolicy{}
	}
	if d.cfg.CatalogTimeout <= 0 {
		d.cfg.CatalogTimeout = 2 * time.Second
	}
	if d.cfg.CatalogRefresh <= 0 {
		d.cfg.CatalogRefresh = 10 * time.Second
	}
	d.log = cfg.Logger
	if d.log == nil {
		d.log = node.log
	}
	for id, f := range cfg.Require {
		flt, err := ParseFilter(f)
		if err != nil {
			return nil, fmt.Errorf("%w: Require[%q]: %v", ErrConfig, id, err)
		}
		d.need[id] = flt
	}
	reg, _ := builtin.Registrar(srv).(arbor.Registrar)
	if err := arbor.HandleServerStream(reg, ResolveID, d.serveResolve); err != nil {
		return nil, fmt.Errorf("cluster: registering %s: %w", ResolveID, err)
	}
	ccfg := cfg.Client
	if len(ccfg.Seeds) == 0 {
		ccfg.Seeds = node.cfg.RPCAddrs
	}
	if ccfg.Logger == nil {
		ccfg.Logger = d.log
	}
	if ccfg.KeepAlive == 0 {
		ccfg.KeepAlive = DistributeKeepAlive
		if ccfg.Phi == (PhiConfig{}) { // the detector's defaults assume 100 ms
			ccfg.Phi = DefaultPhiConfig()
			ccfg.Phi.FirstHeartbeatEstimate = DistributeKeepAlive
			ccfg.Phi.MinStdDev = DistributeKeepAlive / 2
		}
	}
	c, err := DialConfig(ctx, ccfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: distributed resolution: %w", err)
	}
	d.client = c
	d.view.Store(&view{})
	d.life, d.stop = context.WithCancel(context.Background())
	events, cancel := node.Subscribe()
	d.refresh(ctx)
	d.wg.Add(1)
	go d.follow(events, cancel)
	engine.SetPlacer(node.Name(), d)
	return d, nil
}

// Close stops placing requests elsewhere (the engine resolves everything
// here from then on) and closes the connections to the other members.
func (d *Distributor) Close() error {
	d.once.Do(func() {
		d.engine.SetPlacer(d.node.Name(), nil)
		d.stop()
		d.wg.Wait()
		d.client.Close()
	})
	return nil
}

// Client is the cluster client the distributor calls other members with.
func (d *Distributor) Client() *Client { return d.client }

// Place implements resolve.Placer: nil for here, or the member the policy
// chooses among those eligible for n's function, tried ones excluded.
// The common cases (a function only this member has, or a Local one)
// return early, and the rest is out of line: Place runs for every request
// of every tree, deep in its recursion, so its frame stays small.
func (d *Distributor) Place(ctx context.Context, n *request.Node, tried []string) (resolve.Place, error) {
	v := d.view.Load()
	el := v.eligible(d, n.ID)
	if len(tried) == 0 && (el.local || el.onlySelf) {
		return nil, nil // cheap, or nowhere else: no round trip
	}
	return d.choose(ctx, v, el, n, tried)
}

// choose is Place's general case.
//
//go:noinline
func (d *Distributor) choose(ctx context.Context, v *view, el *eligible, n *request.Node, tried []string) (resolve.Place, error) {
	cands := el.cands
	if len(tried) > 0 {
		cands = slices.DeleteFunc(slices.Clone(cands), func(c Candidate) bool { return slices.Contains(tried, c.Name) })
	}
	if len(cands) == 0 {
		if len(el.cands) == 0 && v.incomplete && ctx.Err() == nil {
			// A member's catalog is not known yet: learn it, then decide.
			d.refresh(ctx)
			if v2 := d.view.Load(); v2 != v {
				return d.Place(ctx, n, tried)
			}
		}
		return nil, d.nowhere(n.ID, tried)
	}
	self := d.node.Name()
	if len(cands) == 1 && cands[0].Name == self {
		return nil, nil
	}
	i := d.policy.Choose(Choice{Request: n, Key: contentKey(n), Self: self, Eligible: cands})
	if i < 0 || i >= len(cands) {
		return nil, arbor.Errorf(arbor.Internal, "cluster: the placement policy chose %d of %d members", i, len(cands))
	}
	if cands[i].Name == self {
		return nil, nil
	}
	return &remotePlace{d: d, name: cands[i].Name, stats: cands[i].Stats}, nil
}

// contentKey is n.Key() out of line, keeping its 1 KiB scratch buffer out
// of choose's frame.
//
//go:noinline
func contentKey(n *request.Node) request.Key { return n.Key() }

// nowhere is the error for a function no eligible live member has.
func (d *Distributor) nowhere(id string, tried []string) error {
	need := ""
	if f, ok := d.need[id]; ok && !f.IsZero() {
		need = " with tags " + f.String()
	}
	if len(tried) > 0 {
		return arbor.Errorf(arbor.Unavailable, "no other live member has function %q%s", id, need)
	}
	return arbor.Errorf(arbor.NotFound, "no live member has function %q%s", id, need)
}

// statsOf returns the in-flight figures of member name.
func (d *Distributor) statsOf(name string) *Stats {
	if name == d.node.Name() {
		return &d.self
	}
	if s, ok := d.stats.Load(name); ok {
		return s.(*Stats)
	}
	s, _ := d.stats.LoadOrStore(name, NewStats(DefaultDecay))
	return s.(*Stats)
}

// view is what placement knows of the members: who is alive, their tags
// and which request-tree functions each has. It is replaced, never
// changed, when the membership or a catalog changes.
type view struct {
	members    []memberView         // alive, sorted by name, this node included
	incomplete bool                 // an alive member's catalog is missing
	known      map[string]*eligible // the functions known at refresh; read-only
	byFunc     sync.Map             // function id → *eligible, for the others
}

type memberView struct {
	name  string
	tags  map[string]string
	funcs map[string]funcInfo // nil for this node: its server is asked
}

type funcInfo struct{ local bool }

// eligible is the members that may resolve one function.
type eligible struct {
	cands    []Candidate
	local    bool // this node has it, marked Local, and may run it
	onlySelf bool // this node is the only eligible one
}

// eligible returns the members that may resolve function id, worked out
// once per view and function.
func (v *view) eligible(d *Distributor, id string) *eligible {
	if e, ok := v.known[id]; ok {
		return e
	}
	if e, ok := v.byFunc.Load(id); ok {
		return e.(*eligible)
	}
	return v.findEligible(d, id)
}

//go:noinline
func (v *view) findEligible(d *Distributor, id string) *eligible {
	need := d.need[id]
	self := d.node.Name()
	el := &eligible{}
	for _, m := range v.members {
		if !need.Match(m.tags) {
			continue
		}
		var has, local bool
		if m.name == self {
			info, ok := d.srv.Function(id)
			has, local = ok && resolvable(info), info.Local
		} else {
			f, ok := m.funcs[id]
			has, local = ok, f.local
		}
		if !has {
			continue
		}
		if m.name == self && local {
			el.local = true
		}
		el.cands = append(el.cands, Candidate{Name: m.name, Stats: d.statsOf(m.name)})
	}
	if len(v.members) == 0 { // not started yet: only here
		if info, ok := d.srv.Function(id); ok && resolvable(info) {
			el.cands = []Candidate{{Name: self, Stats: &d.self}}
		}
	}
	el.onlySelf = len(el.cands) == 1 && el.cands[0].Name == self
	if len(el.cands) == 0 {
		// Not kept: the function may be registered here any moment, and
		// a peer naming functions nobody has must not grow the map.
		return el
	}
	e, _ := v.byFunc.LoadOrStore(id, el)
	return e.(*eligible)
}

// resolvable reports whether a request tree may name f (as package tree
// decides: unary, not built in).
func resolvable(f arbor.FunctionInfo) bool {
	return f.Kind == arbor.KindUnary && !strings.HasPrefix(f.ID, "arbor.")
}

// follow refreshes the view after membership changes (coalesced),
// retries missing catalogs every second, and fetches them all again every
// CatalogRefresh.
func (d *Distributor) follow(events <-chan Event, cancel func()) {
	defer d.wg.Done()
	defer cancel()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	all := time.NewTicker(d.cfg.CatalogRefresh)
	defer all.Stop()
	for {
		select {
		case <-d.life.Done():
			return
		case _, ok := <-events:
			if !ok {
				return
			}
			// Coalesce a burst (a cluster starting up).
			pause := time.NewTimer(membersCoalesce)
		drain:
			for {
				select {
				case <-events:
				case <-pause.C:
					break drain
				case <-d.life.Done():
					pause.Stop()
					return
				}
			}
			d.refresh(d.life)
		case <-t.C:
			if d.view.Load().incomplete {
				d.refresh(d.life)
			}
		case <-all.C:
			d.refreshCatalogs(d.life, true)
		}
	}
}

// refresh builds a new view from the membership, fetching the catalogs of
// members it has none for (new ones, or ones that changed).
func (d *Distributor) refresh(ctx context.Context) { d.refreshCatalogs(ctx, false) }

// refreshCatalogs is refresh; all fetches every other member's catalog
// again, keeping the one known when a fetch fails.
func (d *Distributor) refreshCatalogs(ctx context.Context, all bool) {
	d.refreshM.Lock()
	defer d.refreshM.Unlock()
	old := d.view.Load()
	prev := map[string]memberView{}
	for _, m := range old.members {
		prev[m.name] = m
	}
	self := d.node.Name()
	next := &view{}
	var fetch []int
	var keep []map[string]funcInfo // by fetch: what to keep if it fails
	members := d.node.Members(Filter{})
	// The in-flight figures of members that are gone go with them (those
	// of a subtree still running there stay with its place).
	current := make(map[string]bool, len(members))
	for _, m := range members {
		current[m.Name] = true
	}
	d.stats.Range(func(k, _ any) bool {
		if !current[k.(string)] {
			d.stats.Delete(k)
		}
		return true
	})
	for _, m := range members {
		if m.State != StateAlive {
			continue
		}
		mv := memberView{name: m.Name, tags: m.Tags}
		var kept map[string]funcInfo
		if p, ok := prev[m.Name]; ok && p.funcs != nil && sameTags(p.tags, m.Tags) {
			kept = p.funcs
		}
		if !all {
			mv.funcs = kept
		}
		if m.Name != self && mv.funcs == nil {
			fetch = append(fetch, len(next.members))
			keep = append(keep, kept)
		}
		next.members = append(next.members, mv)
	}
	var wg sync.WaitGroup
	for j, i := range fetch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := d.fetchCatalog(ctx, next.members[i].name)
			if f == nil {
				f = keep[j]
			}
			next.members[i].funcs = f
		}()
	}
	wg.Wait()
	for _, m := range next.members {
		if m.name != self && m.funcs == nil {
			next.incomplete = true
		}
	}
	// Work out the eligible members of every function known now, so that
	// placing a request costs one plain map lookup.
	next.known = map[string]*eligible{}
	add := func(id string) {
		if _, ok := next.known[id]; !ok {
			next.known[id] = next.findEligible(d, id)
		}
	}
	for _, f := range d.srv.Catalog() {
		if resolvable(f) {
			add(f.ID)
		}
	}
	for _, m := range next.members {
		for id := range m.funcs {
			add(id)
		}
	}
	next.byFunc.Clear()
	d.view.Store(next)
}

// fetchCatalog asks member name for its functions; nil if it did not
// answer.
func (d *Distributor) fetchCatalog(ctx context.Context, name string) map[string]funcInfo {
	cctx, cancel := context.WithTimeout(WithMember(ctx, name), d.cfg.CatalogTimeout)
	defer cancel()
	infos, err := arbor.Call0[[]arbor.FunctionInfo](cctx, d.client, arbor.CatalogFunction)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			d.log.Debug("cluster: catalog of member not fetched", "member", name, "err", err)
		}
		return nil
	}
	m := make(map[string]funcInfo, len(infos))
	for _, f := range infos {
		if resolvable(f) {
			m[f.ID] = funcInfo{local: f.Local}
		}
	}
	return m
}

func sameTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var _ resolve.Placer = (*Distributor)(nil)
