package tree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/value"
)

// The built-in functions Enable registers: what the client side of this
// package calls, and what other languages can call.
const (
	// ResolveID resolves a tree and returns the root's result:
	// arbor.resolve(request) any. The request is the msgpack form
	// (request.AppendMsgpack) or Cradle JSON text in a string.
	ResolveID = "arbor.resolve"
	// SubmitID starts resolving a tree and returns its id:
	// arbor.submit(request) string.
	SubmitID = "arbor.submit"
	// StatusID returns a tree's status: arbor.status(id) *resolve.Status.
	StatusID = "arbor.status"
	// ResultID waits for a tree and returns its result: arbor.result(id) any.
	ResultID = "arbor.result"
	// CancelID cancels a tree: arbor.cancel(id, path) bool.
	CancelID = "arbor.cancel"
	// ReleaseID drops a tree: arbor.release(id) bool.
	ReleaseID = "arbor.release"
	// StatsID returns the engine's and caches' counters and the call
	// count of every function: arbor.cache_stats() resolve.Stats.
	StatsID = "arbor.cache_stats"
	// CatalogID lists the functions a request may name, with their caching
	// levels, titles and call counts: arbor.resolve_catalog() []Function.
	CatalogID = "arbor.resolve_catalog"
)

// Config configures request-tree resolution on a server. The zero value
// is usable: a 1 GiB memory cache, no secondary cache (full behaves as
// mem), the request package's default limits.
type Config struct {
	// MemoryCache is the memory cache; nil: cache.NewMemory(MemoryCacheBytes).
	MemoryCache cache.Cache
	// MemoryCacheBytes bounds the memory cache made when MemoryCache is
	// nil (default cache.DefaultMemoryBytes, 1 GiB).
	MemoryCacheBytes int64
	// SecondaryCache is the cache behind memory for the full levels:
	// cache.OpenDisk (survives restarts) or cache.NewRedis (shared by a
	// cluster). Nil: full behaves as mem.
	SecondaryCache cache.Cache
	// Concurrency bounds the subrequests resolving at once in goroutines
	// of their own (default 64).
	Concurrency int
	// Limits bound the trees accepted (depth, node count, values).
	Limits request.Limits
	// MaxAttempts caps any retry policy (default 10).
	MaxAttempts int
	// KeepFinished is how long a finished asynchronous tree stays
	// available (default 10 minutes); MaxTrees bounds the trees held
	// (default 10000).
	KeepFinished time.Duration
	MaxTrees     int
	// Retry gives functions, by id, a policy for re-running them on
	// errors marked retryable.
	Retry map[string]resolve.RetryPolicy
	// Authorize, when set, is asked about every request of every tree,
	// cached or not, with the context of the call that carried the tree
	// (metadata, peer). Functions in a tree run through the server's
	// interceptors, but a cached result is served without running them:
	// access control that must also hold for cached results belongs here.
	Authorize func(ctx context.Context, id string) error
	// Logger receives cache errors (which count as misses). Default:
	// nowhere.
	Logger *slog.Logger
	// Observer sees the engine's trees, requests, cache lookups, joins
	// and retries (resolve.Config.Observer): metrics and tracing.
	Observer resolve.Observer
	// Placer and Name are resolve.Config's: where each request resolves
	// (a cluster places subtrees on other members; see package cluster's
	// Distribute, which installs its own later) and this node's name in
	// status trees.
	Placer resolve.Placer
	Name   string
}

// Function describes a function that request trees may name.
type Function struct {
	ID     string   `msgpack:"id" json:"id"` // the uuid, caching suffix included
	Title  string   `msgpack:"title" json:"title"`
	Args   []string `msgpack:"args" json:"args"`
	Result string   `msgpack:"result" json:"result"`
	Level  string   `msgpack:"level" json:"level"` // none, mem, full, mem_vb, full_vb
	Calls  int64    `msgpack:"calls" json:"calls"` // times it ran in resolutions
	// Local: the function is cheap (arbor.Local) and stays on the node
	// that has the tree when a cluster resolves it.
	Local bool `msgpack:"local,omitempty" json:"local,omitempty"`
}

func (f Function) String() string {
	s := fmt.Sprintf("%s(%s) %s [%s, %d calls]", f.ID, strings.Join(f.Args, ", "), f.Result, f.Level, f.Calls)
	if f.Title != "" {
		s = f.Title + ": " + s
	}
	return s
}

// Enable lets clients send request trees to srv: it builds a
// resolve.Engine over srv's functions (those registered so far and later;
// built-in "arbor." functions and streaming functions excepted) and
// registers the built-in functions ResolveID … CatalogID and WatchID. Functions in a
// tree run through srv's interceptors, as if called one by one; results
// served from a cache do not (see Config.Authorize).
//
// The engine owns the caches: close it (after the server) to stop the
// asynchronous trees and close them.
func Enable(srv *arbor.Server, cfg Config) (*resolve.Engine, error) {
	mem := cfg.MemoryCache
	if mem == nil {
		mem = cache.NewMemory(cfg.MemoryCacheBytes)
	}
	cat := &serverCatalog{s: srv, retry: cfg.Retry}
	var catalog resolve.Catalog = cat
	if builtin.ArgNormalizer != nil {
		// Generated code is linked in: its message arguments are keyed
		// in one form whichever they came in (see arborproto.Normalize).
		catalog = &normalizingCatalog{serverCatalog: cat}
	}
	e, err := resolve.New(resolve.Config{
		Catalog:      catalog,
		Memory:       mem,
		Secondary:    cfg.SecondaryCache,
		Concurrency:  cfg.Concurrency,
		Limits:       cfg.Limits,
		MaxAttempts:  cfg.MaxAttempts,
		KeepFinished: cfg.KeepFinished,
		MaxTrees:     cfg.MaxTrees,
		Authorize:    cfg.Authorize,
		Logger:       cfg.Logger,
		Observer:     cfg.Observer,
		Placer:       cfg.Placer,
		Name:         cfg.Name,
	})
	if err != nil {
		return nil, err
	}
	lim := e.Limits()
	raw := func(id, result string, args []string, fn builtin.RawFunc) error {
		return builtin.Register(srv, id, args, result, fn)
	}
	err = errors.Join(
		raw(ResolveID, "any", []string{"request"}, func(ctx context.Context, args []byte) ([]byte, error) {
			n, res, err := requestArg(ctx, ResolveID, args, lim, e)
			if err != nil || n == nil {
				return res, err
			}
			return e.Resolve(ctx, n)
		}),
		raw(SubmitID, "string", []string{"request"}, func(ctx context.Context, args []byte) ([]byte, error) {
			n, _, err := requestArg(ctx, SubmitID, args, lim, nil)
			if err != nil {
				return nil, err
			}
			id, err := e.Submit(ctx, n)
			if err != nil {
				return nil, err
			}
			return value.AppendString(nil, id), nil
		}),
		raw(StatusID, "resolve.Status", []string{"string"}, func(ctx context.Context, args []byte) ([]byte, error) {
			id, err := stringArgs(StatusID, args, 1)
			if err != nil {
				return nil, err
			}
			st, err := e.Status(id[0])
			if err != nil {
				return nil, err
			}
			return value.For[*resolve.Status]().Append(nil, st)
		}),
		raw(ResultID, "any", []string{"string"}, func(ctx context.Context, args []byte) ([]byte, error) {
			id, err := stringArgs(ResultID, args, 1)
			if err != nil {
				return nil, err
			}
			return e.Result(ctx, id[0])
		}),
		raw(CancelID, "bool", []string{"string", "string"}, func(ctx context.Context, args []byte) ([]byte, error) {
			a, err := stringArgs(CancelID, args, 2)
			if err != nil {
				return nil, err
			}
			if err := e.Cancel(a[0], a[1]); err != nil {
				return nil, err
			}
			return value.AppendBool(nil, true), nil
		}),
		raw(ReleaseID, "bool", []string{"string"}, func(ctx context.Context, args []byte) ([]byte, error) {
			a, err := stringArgs(ReleaseID, args, 1)
			if err != nil {
				return nil, err
			}
			if err := e.Release(a[0]); err != nil {
				return nil, err
			}
			return value.AppendBool(nil, true), nil
		}),
		raw(StatsID, "resolve.Stats", nil, func(ctx context.Context, args []byte) ([]byte, error) {
			if _, err := stringArgs(StatsID, args, 0); err != nil {
				return nil, err
			}
			return value.For[resolve.Stats]().Append(nil, e.Stats())
		}),
		raw(CatalogID, "[]tree.Function", nil, func(ctx context.Context, args []byte) ([]byte, error) {
			if _, err := stringArgs(CatalogID, args, 0); err != nil {
				return nil, err
			}
			return value.For[[]Function]().Append(nil, cat.list(e))
		}),
		registerWatch(srv, e), // watch.go
	)
	if err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// requestArg reads the single argument of arbor.resolve and arbor.submit:
// a request in msgpack form, or Cradle JSON text (str or bin). The bytes
// are copied: the tree may outlive the call (a shared run, a submitted
// tree).
//
// With hit set, a request in msgpack form whose root is a cached level is
// first looked up in the memory cache without building the tree; a hit
// returns the result instead of a tree.
func requestArg(ctx context.Context, fn string, args []byte, lim request.Limits, hit *resolve.Engine) (*request.Node, []byte, error) {
	r := value.NewReader(args)
	n, err := r.ReadArrayHeader()
	if err != nil || n != 1 {
		return nil, nil, status.Errorf(status.InvalidArgument, "%s takes 1 argument (a request), got %s", fn, describeArgs(n, err))
	}
	switch r.PeekKind() {
	case value.KindArray:
		rest := r.Rest()
		if hit != nil {
			if res, ok := hit.MemoryHitMsgpack(ctx, rest); ok {
				return nil, res, nil
			}
		}
		rest = bytes.Clone(rest)
		node, used, err := request.ParseMsgpack(rest, lim)
		if err != nil {
			return nil, nil, err
		}
		if used != len(rest) {
			return nil, nil, status.Errorf(status.InvalidArgument, "%s: %d byte(s) after the request", fn, len(rest)-used)
		}
		return node, nil, nil
	case value.KindString, value.KindBytes:
		text, err := r.ReadStringBytes()
		if err != nil {
			return nil, nil, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, fn)
		}
		if len(r.Rest()) != 0 {
			return nil, nil, status.Errorf(status.InvalidArgument, "%s: %d byte(s) after the request", fn, len(r.Rest()))
		}
		node, err := request.ParseJSON(text, lim)
		return node, nil, err
	}
	return nil, nil, status.Errorf(status.InvalidArgument, "%s: want a request (a msgpack array, or Cradle JSON text in a string), got %s", fn, r.PeekKind())
}

func describeArgs(n int, err error) string {
	if err != nil {
		return "no argument array"
	}
	return fmt.Sprintf("%d", n)
}

// stringArgs reads an argument array of n strings.
func stringArgs(fn string, args []byte, n int) ([]string, error) {
	r := value.NewReader(args)
	got, err := r.ReadArrayHeader()
	if err != nil || got != n {
		return nil, status.Errorf(status.InvalidArgument, "%s takes %d argument(s), got %s", fn, n, describeArgs(got, err))
	}
	out := make([]string, n)
	for i := range out {
		if out[i], err = r.ReadString(); err != nil {
			return nil, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, fmt.Sprintf("%s: argument %d (string)", fn, i))
		}
	}
	if len(r.Rest()) != 0 {
		return nil, status.Errorf(status.InvalidArgument, "%s: %d byte(s) after the argument array", fn, len(r.Rest()))
	}
	return out, nil
}

// serverCatalog is the resolution catalog over a server's functions.
type serverCatalog struct {
	s     *arbor.Server
	retry map[string]resolve.RetryPolicy
}

// resolvable reports whether a request tree may name f.
func resolvable(f arbor.FunctionInfo) bool {
	return f.Kind == arbor.KindUnary && !strings.HasPrefix(f.ID, "arbor.")
}

func (c *serverCatalog) Lookup(id string) (resolve.Func, bool) {
	info, ok := c.s.Function(id)
	if !ok || !resolvable(info) {
		return resolve.Func{}, false
	}
	inv := resolve.InvokerFunc(func(ctx context.Context, args []byte) ([]byte, error) {
		return builtin.Invoke(c.s, ctx, id, args)
	})
	return resolve.Func{Invoker: inv, Args: info.Args, Result: info.Result, Title: info.Title, Retry: c.retry[id]}, true
}

// normalizingCatalog is serverCatalog with the argument normalisers of
// builtin.ArgNormalizer, found once per function: norms maps a function id
// to its resolve.ArgNormalizer (nil for none). Only registered functions
// enter it, and registrations are never undone, so it stays as small as
// the server's catalog and never goes stale.
type normalizingCatalog struct {
	*serverCatalog
	norms sync.Map
}

func (c *normalizingCatalog) ArgNormalizer(id string) resolve.ArgNormalizer {
	if f, ok := c.norms.Load(id); ok {
		return f.(resolve.ArgNormalizer)
	}
	info, ok := c.s.Function(id)
	if !ok || !resolvable(info) {
		return nil
	}
	f := resolve.ArgNormalizer(builtin.ArgNormalizer(info.ID, info.Args))
	c.norms.Store(id, f)
	return f
}

func (c *serverCatalog) list(e *resolve.Engine) []Function {
	var out []Function
	for _, info := range c.s.Catalog() {
		if !resolvable(info) {
			continue
		}
		out = append(out, Function{
			ID:     info.ID,
			Title:  info.Title,
			Args:   info.Args,
			Result: info.Result,
			Level:  request.LevelOf(info.ID).String(),
			Calls:  e.Calls(info.ID),
			Local:  info.Local,
		})
	}
	slices.SortFunc(out, func(a, b Function) int { return strings.Compare(a.ID, b.ID) })
	return out
}
