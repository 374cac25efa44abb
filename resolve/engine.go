// Package resolve is Arbor's request-tree engine: it resolves a
// request.Node by looking its function up in a Catalog, resolving the
// subrequests first — concurrently, up to a bound, identical ones in flight
// at once only once — then running the function with the resolved
// arguments, through the caches that the node's caching level names.
//
// Levels (request.LevelOf): none runs every time; mem keeps results in the
// memory cache; full keeps them in the memory cache and the secondary
// (disk or Redis) cache, so they survive restarts; the _vb variants key on
// the resolved argument values instead of the request. Concurrent identical
// cached requests run once.
//
// A catalog that is a Normalizer (normal.go) names functions whose
// argument types have several encodings of one value (protobuf messages:
// binary or protojson); the engine brings their literal arguments into
// one normal form before it keys a tree, so the encoding a client chose
// does not split the cache, and runs them on that form.
//
// Errors name the path of the failing node ("args.tuple_element2"). A
// per-function retry policy re-runs functions whose errors are marked
// retryable. Trees can also be resolved asynchronously (Submit) with a
// status tree per request node (Status), cancelled (Cancel), fetched
// (Result) and released (Release).
//
// What it is not: it does not decode or encode requests (package request
// does), store anything itself (package cache does), or know about the
// network (the root package serves it).
package resolve

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/value"
)

// Invoker runs a function with msgpack-encoded arguments (an array) and
// returns its msgpack-encoded result. Errors should be *arbor.Error values
// (status.Error); their Retryable flag drives the retry policy.
type Invoker interface {
	Invoke(ctx context.Context, args []byte) ([]byte, error)
}

// InvokerFunc adapts a function to Invoker.
type InvokerFunc func(ctx context.Context, args []byte) ([]byte, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, args []byte) ([]byte, error) { return f(ctx, args) }

// Func is a function the engine can call.
type Func struct {
	Invoker Invoker
	// Args names the argument types, one per argument: the engine checks
	// the argument count against it before resolving anything.
	Args []string
	// Result names the result type (introspection only).
	Result string
	// Title names the function in introspection; requests carry their own.
	Title string
	// Retry is the function's retry policy; a request's retry hint
	// (request.Node.Retry) overrides it.
	Retry RetryPolicy
}

// Catalog finds functions by id (the request's uuid, suffix included).
type Catalog interface {
	Lookup(id string) (Func, bool)
}

// CatalogFunc adapts a function to Catalog.
type CatalogFunc func(id string) (Func, bool)

// Lookup calls f.
func (f CatalogFunc) Lookup(id string) (Func, bool) { return f(id) }

// MapCatalog is a Catalog held in a map; handy for tests and small
// programs. It must not be changed while an engine uses it.
type MapCatalog map[string]Func

// Lookup returns m[id].
func (m MapCatalog) Lookup(id string) (Func, bool) {
	f, ok := m[id]
	return f, ok && f.Invoker != nil
}

// RetryPolicy re-runs a function whose error is marked retryable: up to
// MaxAttempts runs in all, waiting BaseDelay before the second, twice as
// long before each next one, never more than MaxDelay. The zero value
// runs once.
type RetryPolicy struct {
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration // zero: 30s
}

// Config configures an Engine. The zero value (with a Catalog) is usable.
type Config struct {
	// Catalog finds the functions. Required.
	Catalog Catalog
	// Memory is the memory cache (levels mem, full and their _vb
	// variants). Nil: a cache.Memory of cache.DefaultMemoryBytes.
	Memory cache.Cache
	// Secondary is the cache behind the memory cache for the full levels
	// (cache.Disk, cache.Redis). Nil: full behaves as mem.
	Secondary cache.Cache
	// Concurrency bounds the goroutines the engine starts for
	// subrequests, engine-wide, to Concurrency-1; past it, subrequests
	// resolve one after another in their parent's goroutine. Default 64;
	// 1 resolves every tree sequentially.
	Concurrency int
	// Authorize, when set, is asked about every request of a tree before
	// its cache lookup: a non-nil error (PermissionDenied, say) fails the
	// request with the request's path, whether its result is cached or
	// not. Interceptors see function runs only, not cache hits, so access
	// control that must hold for cached results belongs here.
	Authorize func(ctx context.Context, id string) error
	// Limits bound the trees the engine accepts (zero fields: defaults).
	Limits request.Limits
	// MaxAttempts caps the attempts any retry policy or request hint may
	// ask for. Default 10.
	MaxAttempts int
	// KeepFinished is how long a finished asynchronous tree is kept for
	// Status and Result before it is dropped. Default 10 minutes.
	KeepFinished time.Duration
	// MaxTrees bounds the asynchronous trees held at once, running or
	// finished; Submit fails with ResourceExhausted beyond it. Default
	// 10000.
	MaxTrees int
	// Logger receives cache errors (which are treated as misses). Default:
	// nowhere.
	Logger *slog.Logger
	// Observer, when set, sees trees, requests, cache lookups, joins and
	// retries as they happen (observe.go): metrics and tracing. For the
	// status of asynchronous trees as it changes, use Engine.Subscribe.
	Observer Observer
	// Placer, when set, decides where each request of a tree resolves:
	// here or on another node (place.go). Nil: everything here.
	// Engine.SetPlacer installs one later.
	Placer Placer
	// Name names this engine's node in status trees (Status.Node); empty
	// leaves Node empty for requests resolved here.
	Name string
}

// Engine resolves request trees. It is safe for concurrent use.
type Engine struct {
	cfg     Config
	mem     cache.Cache
	sec     cache.Cache
	sem     chan struct{}
	flights flightGroup
	memo    *keyMemo
	norm    Normalizer // the catalog's, if it has one
	calls   sync.Map   // function id → *atomic.Int64
	log     *slog.Logger
	secTier string // the secondary cache's tier name, for the Observer
	subs    subscribers

	resolves, runs, retries, memHits, secHits, misses, failures, cacheErrors atomic.Int64
	remotes, moves                                                           atomic.Int64

	placer atomic.Pointer[placement] // nil: no placement, no name

	isClosed  atomic.Bool
	mu        sync.Mutex
	trees     map[string]*tree
	lastSweep time.Time
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New returns an engine. It owns the caches from then on: Close closes
// them.
func New(cfg Config) (*Engine, error) {
	if cfg.Catalog == nil {
		return nil, status.New(status.InvalidArgument, "resolve: Config.Catalog is nil")
	}
	if cfg.Memory == nil {
		cfg.Memory = cache.NewMemory(cache.DefaultMemoryBytes)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 10
	}
	if cfg.KeepFinished <= 0 {
		cfg.KeepFinished = 10 * time.Minute
	}
	if cfg.MaxTrees <= 0 {
		cfg.MaxTrees = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Limits = limitsOrDefault(cfg.Limits)
	secTier := ""
	if cfg.Secondary != nil {
		secTier = SecondaryTier(cfg.Secondary)
	}
	e := &Engine{
		secTier: secTier,
		cfg:     cfg,
		mem:     cfg.Memory,
		sec:     cfg.Secondary,
		sem:     make(chan struct{}, cfg.Concurrency-1),
		flights: flightGroup{m: make(map[request.Key]*flight)},
		memo:    &keyMemo{seed: maphash.MakeSeed()},
		log:     cfg.Logger,
		trees:   make(map[string]*tree),
	}
	e.norm, _ = cfg.Catalog.(Normalizer)
	if cfg.Placer != nil || cfg.Name != "" {
		e.SetPlacer(cfg.Name, cfg.Placer)
	}
	return e, nil
}

func limitsOrDefault(l request.Limits) request.Limits {
	d := request.DefaultLimits
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = d.MaxNodes
	}
	if l.Value.MaxDepth <= 0 {
		l.Value.MaxDepth = d.Value.MaxDepth
	}
	if l.Value.MaxLength <= 0 {
		l.Value.MaxLength = d.Value.MaxLength
	}
	return l
}

// Limits returns the limits the engine enforces, defaults filled in.
func (e *Engine) Limits() request.Limits { return e.cfg.Limits }

// Resolve resolves the tree and returns the root's msgpack-encoded
// result. The result may be shared with the cache: do not modify it.
// Cancelling ctx cancels the handlers it reached (except work that an
// identical concurrent request still waits for).
func (e *Engine) Resolve(ctx context.Context, n *request.Node) ([]byte, error) {
	if e.isClosed.Load() {
		return nil, status.New(status.Unavailable, "resolve: engine is closed")
	}
	if err := n.Validate(e.cfg.Limits); err != nil {
		return nil, err
	}
	n, err := e.normalize(n, nil)
	if err != nil {
		return nil, err
	}
	e.resolves.Add(1)
	obs := e.cfg.Observer
	if obs != nil {
		obs.TreeStarted(ctx, false)
	}
	res, err := e.node(ctx, n, nil, nil)
	if err != nil {
		e.failures.Add(1)
	}
	if obs != nil {
		obs.TreeEnded(ctx, false, err)
	}
	return res, err
}

// MemoryHit answers a request from the memory cache alone, given its
// root's id, argument count and content key (request.MsgpackKey computes
// them from the wire form without building the tree). It reports false
// unless the function exists with that arity, its level is cached and not
// value-based, and the memory cache holds the key; the caller then
// resolves the tree as usual. A hit counts as a resolution.
func (e *Engine) MemoryHit(ctx context.Context, id string, nargs int, key request.Key) ([]byte, bool) {
	level := request.LevelOf(id)
	if !level.Cached() || level.ValueBased() || e.isClosed.Load() {
		return nil, false
	}
	fn, ok := e.cfg.Catalog.Lookup(id)
	if !ok || len(fn.Args) != nargs || e.cfg.Authorize != nil {
		return nil, false // Authorize must see every request of the tree
	}
	v, ok, err := e.mem.Get(ctx, key)
	if err != nil || !ok {
		return nil, false
	}
	e.resolves.Add(1)
	e.memHits.Add(1)
	if obs := e.cfg.Observer; obs != nil {
		obs.TreeStarted(ctx, false)
		obs.CacheLookup(ctx, level, TierMemory, true)
		obs.TreeEnded(ctx, false, nil)
	}
	return v, true
}

// Calls returns how many times function id has run (retries included).
func (e *Engine) Calls(id string) int64 {
	if c, ok := e.calls.Load(id); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

func (e *Engine) countCall(id string) {
	c, ok := e.calls.Load(id)
	if !ok {
		c, _ = e.calls.LoadOrStore(id, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
}

// Stats is a snapshot of an engine's counters, for introspection.
type Stats struct {
	Resolves      int64            `msgpack:"resolves" json:"resolves"`             // trees resolved (Resolve and Submit)
	Failures      int64            `msgpack:"failures" json:"failures"`             // of which failed
	Runs          int64            `msgpack:"runs" json:"runs"`                     // function runs, retries included
	Retries       int64            `msgpack:"retries" json:"retries"`               // of which retries
	MemoryHits    int64            `msgpack:"memory_hits" json:"memory_hits"`       // cached requests found in memory
	SecondaryHits int64            `msgpack:"secondary_hits" json:"secondary_hits"` // found in the secondary cache
	Misses        int64            `msgpack:"misses" json:"misses"`                 // found in neither
	Deduplicated  int64            `msgpack:"deduplicated" json:"deduplicated"`     // joined an identical request in flight
	CacheErrors   int64            `msgpack:"cache_errors" json:"cache_errors"`     // cache failures, treated as misses
	Trees         int64            `msgpack:"trees" json:"trees"`                   // asynchronous trees held now
	Memory        cache.Stats      `msgpack:"memory" json:"memory"`
	Secondary     *cache.Stats     `msgpack:"secondary" json:"secondary"` // nil without a secondary cache
	Calls         map[string]int64 `msgpack:"calls" json:"calls"`         // runs per function id
	Remote        int64            `msgpack:"remote" json:"remote"`       // requests placed on another node
	Moves         int64            `msgpack:"moves" json:"moves"`         // of which placed again after their node failed
}

// Stats returns the engine's counters, its caches' and the call counts.
func (e *Engine) Stats() Stats {
	s := Stats{
		Resolves:      e.resolves.Load(),
		Failures:      e.failures.Load(),
		Runs:          e.runs.Load(),
		Retries:       e.retries.Load(),
		MemoryHits:    e.memHits.Load(),
		SecondaryHits: e.secHits.Load(),
		Misses:        e.misses.Load(),
		Deduplicated:  e.flights.joins.Load(),
		CacheErrors:   e.cacheErrors.Load(),
		Memory:        e.mem.Stats(),
		Calls:         make(map[string]int64),
		Remote:        e.remotes.Load(),
		Moves:         e.moves.Load(),
	}
	if e.sec != nil {
		st := e.sec.Stats()
		s.Secondary = &st
	}
	e.calls.Range(func(k, v any) bool {
		s.Calls[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	e.mu.Lock()
	s.Trees = int64(len(e.trees))
	e.mu.Unlock()
	return s
}

// Close cancels the asynchronous trees, waits for them to stop, and closes
// the caches. Resolve and Submit fail with Unavailable afterwards.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.isClosed.Store(true)
		e.mu.Lock()
		e.closed = true
		for _, t := range e.trees {
			t.cancel()
		}
		e.mu.Unlock()
		e.wg.Wait()
		e.flights.waitAll()
		e.subs.closeAll()
		err = e.mem.Close()
		if e.sec != nil {
			err = errors.Join(err, e.sec.Close())
		}
	})
	return err
}

// tracker is the status node of the request being resolved (nil when no
// one asked for status).
type tracker = *track

// node resolves n at path, placing it first.
func (e *Engine) node(ctx context.Context, n *request.Node, path *request.Path, st tracker) ([]byte, error) {
	return e.nodeAt(ctx, n, path, st, false)
}

// nodeAt resolves n at path; pinned keeps it here (the root of a subtree
// another node handed over).
func (e *Engine) nodeAt(ctx context.Context, n *request.Node, path *request.Path, st tracker, pinned bool) ([]byte, error) {
	if e.cfg.Observer != nil {
		return e.observedNode(ctx, n, path, st, pinned)
	}
	return e.resolveNode(ctx, n, path, st, pinned)
}

func (e *Engine) resolveNode(ctx context.Context, n *request.Node, path *request.Path, st tracker, pinned bool) ([]byte, error) {
	var known keyHint
	if pl := e.placer.Load(); pl != nil {
		if !pinned && pl.p != nil {
			res, err, done, k := e.place(ctx, pl, n, path, st)
			if done {
				return res, err
			}
			known = k
		}
		st.setNode(pl.name)
	}
	return e.local(ctx, n, path, st, known, false)
}

// keyHint is a request's content key when computed already (ok). A value,
// not a pointer: a pointer would cost an allocation per request.
type keyHint struct {
	key request.Key
	ok  bool
}

// local resolves n here. known is n's content key if known; noFlight skips
// the single flight (the caller holds the flight for key already).
func (e *Engine) local(ctx context.Context, n *request.Node, path *request.Path, st tracker, known keyHint, noFlight bool) ([]byte, error) {
	fn, ok := e.cfg.Catalog.Lookup(n.ID)
	if !ok {
		err := nodeError(path, n, &status.Error{Code: status.NotFound, Category: status.ErrUnknownMethod,
			Message: fmt.Sprintf("unknown function %q", n.ID)})
		st.fail(err)
		return nil, err
	}
	if len(n.Args) != len(fn.Args) {
		err := nodeError(path, n, status.Errorf(status.InvalidArgument, "%s takes %d argument(s) (%s), got %d",
			n.ID, len(fn.Args), joinTypes(fn.Args), len(n.Args)))
		st.fail(err)
		return nil, err
	}
	if e.cfg.Authorize != nil {
		if err := e.cfg.Authorize(ctx, n.ID); err != nil {
			err = nodeError(path, n, err)
			st.fail(err)
			return nil, err
		}
	}
	level := n.Level()
	switch {
	case !level.Cached():
		return e.run(ctx, fn, n, path, st, nil)
	case !level.ValueBased():
		var key request.Key
		if known.ok {
			key = known.key
		} else {
			key = keyOf(n)
		}
		if v, ok := e.lookup(ctx, key, level); ok {
			// A hit skips the subrequests: Authorize must still see them.
			if err := e.authorizeArgs(ctx, n, path); err != nil {
				st.fail(err)
				return nil, err
			}
			st.finish(true)
			return v, nil
		}
		work := func(fctx context.Context) ([]byte, error) {
			if v, ok := e.recheck(fctx, key); ok {
				if err := e.authorizeArgs(fctx, n, path); err != nil {
					st.fail(err)
					return nil, err
				}
				st.finish(true)
				return v, nil
			}
			return e.run(fctx, fn, n, path, st, func(res []byte) { e.store(fctx, key, level, res) })
		}
		if noFlight {
			return work(ctx)
		}
		return e.shared(ctx, key, level, st, n, path, work)
	default:
		return e.run(ctx, fn, n, path, st, nil)
	}
}

// run resolves n's arguments and runs its function. For a value-based
// level it consults the caches once the arguments are known; otherwise it
// calls store (if any) with the result.
func (e *Engine) run(ctx context.Context, fn Func, n *request.Node, path *request.Path, st tracker, store func([]byte)) ([]byte, error) {
	values, err := e.args(ctx, n, path, st)
	if err != nil {
		st.fail(err)
		return nil, err
	}
	level := n.Level()
	if level.ValueBased() {
		for i, v := range values {
			if n.Args[i].Node != nil {
				c, err := request.Canonical(v)
				if err != nil {
					err = nodeError(path, n, status.Errorf(status.Internal, "argument %d: subrequest result is not a single msgpack value: %v", i, err))
					st.fail(err)
					return nil, err
				}
				values[i] = c
			}
		}
		if err := e.normalizeResults(n, path, values); err != nil {
			st.fail(err)
			return nil, err
		}
		key := request.ValueKey(n.ID, values)
		if v, ok := e.lookup(ctx, key, level); ok {
			st.finish(true)
			return v, nil
		}
		return e.shared(ctx, key, level, st, n, path, func(fctx context.Context) ([]byte, error) {
			if v, ok := e.recheck(fctx, key); ok {
				st.finish(true)
				return v, nil
			}
			res, err := e.invoke(fctx, fn, n, path, st, values)
			if err == nil {
				e.store(fctx, key, level, res)
			}
			return res, err
		})
	}
	res, err := e.invoke(ctx, fn, n, path, st, values)
	if err == nil && store != nil {
		store(res)
	}
	return res, err
}

// shared runs fn once for all concurrent callers with the same key (the
// node n at path).
func (e *Engine) shared(ctx context.Context, key request.Key, level request.Level, st tracker, n *request.Node, path *request.Path, fn func(context.Context) ([]byte, error)) ([]byte, error) {
	res, err, joined, from := e.flights.do(ctx, key, path, fn)
	if err == errAbandoned { // this caller's context ended first: say which node it left
		err = nodeError(path, n, status.FromError(ctx.Err()))
	} else if joined && err != nil {
		err = repath(err, from, path) // the run's errors name the starter's paths
	}
	if joined && err == nil {
		// The run authorized n's subrequests for the caller that started
		// it, not for this one.
		if aerr := e.authorizeArgs(ctx, n, path); aerr != nil {
			res, err = nil, aerr
		}
	}
	if joined && e.cfg.Observer != nil {
		e.cfg.Observer.Joined(ctx, level)
	}
	if joined {
		if err != nil {
			st.fail(err)
		} else {
			st.finish(false)
		}
	}
	if err != nil && ctx.Err() != nil && st != nil {
		st.cancelled()
	}
	return res, err
}

// repath rewrites the path that err's message starts with (nodeError's
// "path (id): …"), from or below from, to the same request at or below to.
func repath(err error, from, to *request.Path) error {
	fs, ts := from.String(), to.String()
	se := status.FromError(err)
	if fs == ts || se == nil {
		return err
	}
	p, rest, ok := strings.Cut(se.Message, " (")
	if !ok {
		return err
	}
	rel := ""
	switch {
	case p == fs:
	case fs == "request":
		rel = p
	default:
		if rel, ok = strings.CutPrefix(p, fs+"."); !ok {
			return err
		}
	}
	switch {
	case rel == "":
		p = ts
	case ts == "request":
		p = rel
	default:
		p = ts + "." + rel
	}
	ne := *se
	ne.Message = p + " (" + rest
	ne.Cause = err
	return &ne
}

// args returns the argument values, resolving subrequests.
func (e *Engine) args(ctx context.Context, n *request.Node, path *request.Path, st tracker) ([][]byte, error) {
	values := make([][]byte, len(n.Args))
	subs := 0
	for i, a := range n.Args {
		if a.Node == nil {
			values[i] = a.Value
		} else {
			subs++
		}
	}
	if subs == 0 {
		return values, nil
	}
	st.set(SubrequestsRunning)
	if subs == 1 || cap(e.sem) == 0 {
		for i, a := range n.Args {
			if a.Node == nil {
				continue
			}
			cp := path.Child(i)
			v, err := e.node(ctx, a.Node, &cp, st.child(i))
			if err != nil {
				return nil, err
			}
			values[i] = v
		}
		return values, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}
	paths := make([]request.Path, len(n.Args))
	left := subs
	for i, a := range n.Args {
		if a.Node == nil {
			continue
		}
		left--
		paths[i] = path.Child(i)
		resolveOne := func() {
			v, err := e.node(ctx, a.Node, &paths[i], st.child(i))
			if err != nil {
				fail(err)
				return
			}
			values[i] = v
		}
		if left > 0 {
			select {
			case e.sem <- struct{}{}:
				wg.Add(1)
				go func() {
					defer func() { <-e.sem; wg.Done() }()
					resolveOne()
				}()
				continue
			default:
			}
		}
		if ctx.Err() == nil {
			resolveOne()
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return values, nil
}

// invoke runs the function with the retry policy.
func (e *Engine) invoke(ctx context.Context, fn Func, n *request.Node, path *request.Path, st tracker, values [][]byte) ([]byte, error) {
	size := 5
	for _, v := range values {
		size += len(v)
	}
	args := value.AppendArrayHeader(make([]byte, 0, size), len(values))
	for _, v := range values {
		args = append(args, v...)
	}
	policy := fn.Retry
	if n.Retry.MaxAttempts > 0 {
		policy.MaxAttempts = int(min(n.Retry.MaxAttempts, 1<<20))
		policy.BaseDelay = time.Duration(min(n.Retry.BaseMillis, 1<<40)) * time.Millisecond
	}
	attempts := min(max(policy.MaxAttempts, 1), e.cfg.MaxAttempts)
	maxDelay := policy.MaxDelay
	if maxDelay <= 0 {
		maxDelay = 30 * time.Second
	}
	delay := policy.BaseDelay
	st.set(Running)
	for attempt := 1; ; attempt++ {
		e.countCall(n.ID)
		e.runs.Add(1)
		st.attempt()
		res, err := e.call(ctx, fn, n, args)
		if err == nil {
			st.finish(false)
			return res, nil
		}
		if attempt >= attempts || !retryable(err) || ctx.Err() != nil {
			err = nodeError(path, n, err)
			if ctx.Err() != nil {
				st.cancelledBy(err)
			} else {
				st.fail(err)
			}
			return nil, err
		}
		e.retries.Add(1)
		if obs := e.cfg.Observer; obs != nil {
			obs.Retried(ctx, n.ID)
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				err = nodeError(path, n, status.FromError(ctx.Err()))
				st.cancelledBy(err)
				return nil, err
			}
			delay = min(2*delay, maxDelay)
		}
	}
}

// call runs the function, turning a panic into an Internal error: the
// engine runs functions in goroutines of its own (single flights,
// subrequests), where a panic would take the process down, not just fail
// the call as a direct call's does.
func (e *Engine) call(ctx context.Context, fn Func, n *request.Node, args []byte) (res []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("resolve: function panicked", "id", n.ID, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, status.Errorf(status.Internal, "function %s panicked: %v", n.ID, p)
		}
	}()
	return fn.Invoker.Invoke(ctx, args)
}

func retryable(err error) bool {
	se := status.FromError(err)
	return se != nil && se.Retryable
}

// lookup consults the caches the level names.
func (e *Engine) lookup(ctx context.Context, key request.Key, level request.Level) ([]byte, bool) {
	v, ok, err := e.mem.Get(ctx, key)
	if err != nil {
		e.cacheError("memory get", err)
	} else if ok {
		e.memHits.Add(1)
		e.observeLookup(ctx, level, TierMemory, true)
		return v, true
	}
	e.observeLookup(ctx, level, TierMemory, false)
	if level.UsesSecondary() && e.sec != nil {
		v, ok, err := e.secGet(ctx, key)
		e.observeLookup(ctx, level, e.secTier, err == nil && ok)
		if err != nil {
			e.cacheError("secondary get", err)
		} else if ok {
			e.secHits.Add(1)
			if err := e.mem.Put(ctx, key, v); err != nil {
				e.cacheError("memory put", err)
			}
			return v, true
		}
	}
	e.misses.Add(1)
	return nil, false
}

// recheck looks in the memory cache again once a run is about to start:
// an identical run may have finished between the first look and now.
func (e *Engine) recheck(ctx context.Context, key request.Key) ([]byte, bool) {
	v, ok, err := e.mem.Get(ctx, key)
	return v, ok && err == nil
}

// store keeps a result in the caches the level names.
func (e *Engine) store(ctx context.Context, key request.Key, level request.Level, res []byte) {
	ctx = context.WithoutCancel(ctx) // a result computed is worth keeping
	if err := e.mem.Put(ctx, key, res); err != nil {
		e.cacheError("memory put", err)
	}
	if level.UsesSecondary() && e.sec != nil {
		if err := e.secPut(ctx, key, res); err != nil {
			e.cacheError("secondary put", err)
		}
	}
}

// secGet is e.sec.Get with a panic turned into an error: the secondary
// cache stands for a file or a server, and its failure must cost a miss,
// not the request.
func (e *Engine) secGet(ctx context.Context, key request.Key) (v []byte, ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, ok, err = nil, false, fmt.Errorf("secondary cache panicked: %v", p)
		}
	}()
	return e.sec.Get(ctx, key)
}

// secPut is e.sec.Put with a panic turned into an error.
func (e *Engine) secPut(ctx context.Context, key request.Key, res []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("secondary cache panicked: %v", p)
		}
	}()
	return e.sec.Put(ctx, key, res)
}

// cacheError counts a cache failure, which the caller treats as a miss,
// and logs it. An outage of the secondary cache (cache.ErrUnavailable) is
// logged at Debug: the cache logs it once itself, and each miss it costs
// is no news.
func (e *Engine) cacheError(op string, err error) {
	e.cacheErrors.Add(1)
	level := slog.LevelWarn
	if errors.Is(err, cache.ErrUnavailable) {
		level = slog.LevelDebug
	}
	e.log.Log(context.Background(), level, "resolve: cache error, treated as a miss", "op", op, "err", err)
}

func joinTypes(ts []string) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t
	}
	return s
}

// nodeError puts the node's path and id in front of err's message,
// keeping its code, details and category.
func nodeError(path *request.Path, n *request.Node, err error) error {
	se := status.FromError(err)
	msg := se.Message
	if msg == "" {
		msg = se.Code.String()
	}
	return &status.Error{
		Code:     se.Code,
		Message:  fmt.Sprintf("%s (%s): %s", path, n.ID, msg),
		Details:  se.Details,
		Category: se.Category,
		Cause:    err,
	}
}
