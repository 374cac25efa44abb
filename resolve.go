package arbor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/value"
)

// The built-in functions of request-tree resolution (EnableResolution).
const (
	// ResolveFunction resolves a request tree and returns the root's
	// result: arbor.resolve(request) any. The request is the msgpack form
	// (request.AppendMsgpack) or Cradle JSON text in a string.
	ResolveFunction = "arbor.resolve"
	// SubmitFunction starts resolving a tree and returns its id:
	// arbor.submit(request) string.
	SubmitFunction = "arbor.submit"
	// StatusFunction returns a tree's status: arbor.status(id) *resolve.Status.
	StatusFunction = "arbor.status"
	// ResultFunction waits for a tree and returns its result:
	// arbor.result(id) any.
	ResultFunction = "arbor.result"
	// CancelFunction cancels a tree: arbor.cancel(id, path) bool.
	CancelFunction = "arbor.cancel"
	// ReleaseFunction drops a tree: arbor.release(id) bool.
	ReleaseFunction = "arbor.release"
	// CacheStatsFunction returns the engine's and caches' counters and the
	// call count of every function: arbor.cache_stats() resolve.Stats.
	CacheStatsFunction = "arbor.cache_stats"
	// ResolveCatalogFunction lists the functions a request may name, with
	// their caching levels, titles and call counts:
	// arbor.resolve_catalog() []ResolvableFunction.
	ResolveCatalogFunction = "arbor.resolve_catalog"
)

// ResolveConfig configures request-tree resolution on a server. The zero
// value is usable: a 1 GiB memory cache, no secondary cache (full behaves
// as mem), the request package's default limits.
type ResolveConfig struct {
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
	// Functions gives functions a title and a retry policy, by id.
	Functions map[string]FunctionMeta
	// Authorize, when set, is asked about every request of every tree,
	// cached or not, with the context of the call that carried the tree
	// (metadata, peer). Functions in a tree run through the server's
	// interceptors, but a cached result is served without running them:
	// access control that must also hold for cached results belongs here.
	Authorize func(ctx context.Context, id string) error
}

// FunctionMeta is what resolution knows about a function beyond its
// signature.
type FunctionMeta struct {
	// Title names the function in introspection.
	Title string
	// Retry re-runs the function on errors marked retryable.
	Retry resolve.RetryPolicy
}

// ResolvableFunction describes a function that request trees may name.
type ResolvableFunction struct {
	ID     string   `msgpack:"id" json:"id"` // the uuid, caching suffix included
	Title  string   `msgpack:"title" json:"title"`
	Args   []string `msgpack:"args" json:"args"`
	Result string   `msgpack:"result" json:"result"`
	Level  string   `msgpack:"level" json:"level"` // none, mem, full, mem_vb, full_vb
	Calls  int64    `msgpack:"calls" json:"calls"` // times it ran in resolutions
}

func (f ResolvableFunction) String() string {
	s := fmt.Sprintf("%s(%s) %s [%s, %d calls]", f.ID, strings.Join(f.Args, ", "), f.Result, f.Level, f.Calls)
	if f.Title != "" {
		s = f.Title + ": " + s
	}
	return s
}

// EnableResolution lets clients send request trees to s: it builds a
// resolve.Engine over s's functions (those registered so far and later;
// built-in "arbor." functions and streaming functions excepted) and
// registers the built-in functions ResolveFunction … ResolveCatalogFunction.
// Functions in a tree run through s's interceptors, as if called one by
// one; results served from a cache do not (see ResolveConfig.Authorize).
//
// The engine owns the caches: close it (after the server) to stop the
// asynchronous trees and close them.
func EnableResolution(s *Server, cfg ResolveConfig) (*resolve.Engine, error) {
	mem := cfg.MemoryCache
	if mem == nil {
		mem = cache.NewMemory(cfg.MemoryCacheBytes)
	}
	cat := &serverCatalog{s: s, meta: cfg.Functions}
	e, err := resolve.New(resolve.Config{
		Catalog:      cat,
		Memory:       mem,
		Secondary:    cfg.SecondaryCache,
		Concurrency:  cfg.Concurrency,
		Limits:       cfg.Limits,
		MaxAttempts:  cfg.MaxAttempts,
		KeepFinished: cfg.KeepFinished,
		MaxTrees:     cfg.MaxTrees,
		Authorize:    cfg.Authorize,
		Logger:       s.opts.logger,
	})
	if err != nil {
		return nil, err
	}
	lim := e.Limits()
	raw := func(id, result string, args []string, fn func(ctx context.Context, args []byte) ([]byte, error)) error {
		h := newHandler(id, result, args...)
		h.invoke = func(ctx context.Context, args, out []byte) ([]byte, error) {
			res, err := fn(ctx, args)
			if err != nil {
				return nil, err
			}
			return append(out, res...), nil
		}
		return s.register(h)
	}
	err = errors.Join(
		raw(ResolveFunction, "any", []string{"request"}, func(ctx context.Context, args []byte) ([]byte, error) {
			n, res, err := requestArg(ctx, ResolveFunction, args, lim, e)
			if err != nil || n == nil {
				return res, err
			}
			return e.Resolve(ctx, n)
		}),
		raw(SubmitFunction, "string", []string{"request"}, func(ctx context.Context, args []byte) ([]byte, error) {
			n, _, err := requestArg(ctx, SubmitFunction, args, lim, nil)
			if err != nil {
				return nil, err
			}
			id, err := e.Submit(ctx, n)
			if err != nil {
				return nil, err
			}
			return value.AppendString(nil, id), nil
		}),
		Handle1(s, StatusFunction, func(ctx context.Context, id string) (*resolve.Status, error) { return e.Status(id) }),
		raw(ResultFunction, "any", []string{"string"}, func(ctx context.Context, args []byte) ([]byte, error) {
			id, err := stringArg(ResultFunction, args)
			if err != nil {
				return nil, err
			}
			return e.Result(ctx, id)
		}),
		Handle2(s, CancelFunction, func(ctx context.Context, id, path string) (bool, error) { return true, e.Cancel(id, path) }),
		Handle1(s, ReleaseFunction, func(ctx context.Context, id string) (bool, error) { return true, e.Release(id) }),
		Handle0(s, CacheStatsFunction, func(ctx context.Context) (resolve.Stats, error) { return e.Stats(), nil }),
		Handle0(s, ResolveCatalogFunction, func(ctx context.Context) ([]ResolvableFunction, error) {
			return cat.list(e), nil
		}),
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
		return nil, nil, status.Errorf(InvalidArgument, "%s takes 1 argument (a request), got %s", fn, describeArgs(n, err))
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
			return nil, nil, status.Errorf(InvalidArgument, "%s: %d byte(s) after the request", fn, len(rest)-used)
		}
		return node, nil, nil
	case value.KindString, value.KindBytes:
		text, err := r.ReadStringBytes()
		if err != nil {
			return nil, nil, status.Wrap(InvalidArgument, status.ErrSerialization, err, fn)
		}
		if len(r.Rest()) != 0 {
			return nil, nil, status.Errorf(InvalidArgument, "%s: %d byte(s) after the request", fn, len(r.Rest()))
		}
		node, err := request.ParseJSON(text, lim)
		return node, nil, err
	}
	return nil, nil, status.Errorf(InvalidArgument, "%s: want a request (a msgpack array, or Cradle JSON text in a string), got %s", fn, r.PeekKind())
}

func describeArgs(n int, err error) string {
	if err != nil {
		return "no argument array"
	}
	return fmt.Sprintf("%d", n)
}

func stringArg(fn string, args []byte) (string, error) {
	r := value.NewReader(args)
	n, err := r.ReadArrayHeader()
	if err != nil || n != 1 {
		return "", status.Errorf(InvalidArgument, "%s takes 1 argument (string), got %s", fn, describeArgs(n, err))
	}
	id, err := r.ReadString()
	if err != nil {
		return "", status.Wrap(InvalidArgument, status.ErrSerialization, err, fn+": argument 0 (string)")
	}
	return id, nil
}

// serverCatalog is the resolution catalog over a server's functions.
type serverCatalog struct {
	s    *Server
	meta map[string]FunctionMeta
}

// resolvable reports whether a request tree may name f.
func resolvable(f Function) bool {
	info := f.Info()
	return info.Kind == KindUnary && !strings.HasPrefix(info.ID, "arbor.")
}

func (c *serverCatalog) Lookup(id string) (resolve.Func, bool) {
	f, ok := c.s.Function(id)
	if !ok || !resolvable(f) {
		return resolve.Func{}, false
	}
	info := f.Info()
	m := c.meta[id]
	var inv resolve.Invoker = f
	if c.s.chain != nil {
		inv = &intercepted{s: c.s, id: id}
	}
	return resolve.Func{Invoker: inv, Args: info.Args, Result: info.Result, Title: m.Title, Retry: m.Retry}, true
}

func (c *serverCatalog) list(e *resolve.Engine) []ResolvableFunction {
	var out []ResolvableFunction
	for _, info := range c.s.Catalog() {
		f, ok := c.s.Function(info.ID)
		if !ok || !resolvable(f) {
			continue
		}
		out = append(out, ResolvableFunction{
			ID:     info.ID,
			Title:  c.meta[info.ID].Title,
			Args:   info.Args,
			Result: info.Result,
			Level:  request.LevelOf(info.ID).String(),
			Calls:  e.Calls(info.ID),
		})
	}
	slices.SortFunc(out, func(a, b ResolvableFunction) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// intercepted invokes a function through the server's interceptors, with
// the metadata and peer of the call that carried the tree.
type intercepted struct {
	s  *Server
	id string
}

func (f *intercepted) Invoke(ctx context.Context, args []byte) ([]byte, error) {
	req := &Request{Function: f.id, Metadata: IncomingMetadata(ctx), Args: args}
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	resp, err := f.s.chain(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.Result, nil
}

// ---- client side ----

// appendRequestArg encodes the argument array [tree].
func appendRequestArg(b []byte, n *request.Node) ([]byte, error) {
	b = value.AppendArrayHeader(b, 1)
	b, err := request.AppendMsgpack(b, n)
	if err != nil {
		return b, status.Wrap(InvalidArgument, status.ErrSerialization, status.FromError(err), "encoding the request")
	}
	return b, nil
}

// Resolve sends the request tree to the server in one call and decodes
// the root's result as R:
//
//	tree := request.New("add+mem", request.New("add", 1, 2), 3)
//	sum, err := arbor.Resolve[int](ctx, client, tree)
//
// The server must have EnableResolution. Errors name the path of the
// failing node.
func Resolve[R any](ctx context.Context, c *Client, n *request.Node) (R, error) {
	buf := getArgBuf()
	var err error
	buf.b, err = appendRequestArg(buf.b[:0], n)
	return finish[R](ctx, c, ResolveFunction, buf, err)
}

// ResolveJSON sends a request tree in Cradle JSON form and returns the
// root's msgpack-encoded result.
func ResolveJSON(ctx context.Context, c *Client, cradleJSON []byte) ([]byte, error) {
	b := value.AppendArrayHeader(nil, 1)
	b = value.AppendString(b, string(cradleJSON))
	return c.Invoke(ctx, ResolveFunction, b)
}

// SubmitRequest starts resolving the tree on the server and returns the
// id to query it with.
func SubmitRequest(ctx context.Context, c *Client, n *request.Node) (string, error) {
	buf := getArgBuf()
	var err error
	buf.b, err = appendRequestArg(buf.b[:0], n)
	return finish[string](ctx, c, SubmitFunction, buf, err)
}

// SubmitJSON is SubmitRequest for a tree in Cradle JSON form.
func SubmitJSON(ctx context.Context, c *Client, cradleJSON []byte) (string, error) {
	return Call1[string](ctx, c, SubmitFunction, string(cradleJSON))
}

// RequestStatus returns the status tree of a submitted tree.
func RequestStatus(ctx context.Context, c *Client, id string) (*resolve.Status, error) {
	return Call1[*resolve.Status](ctx, c, StatusFunction, id)
}

// RequestResult waits for a submitted tree and decodes its result as R.
func RequestResult[R any](ctx context.Context, c *Client, id string) (R, error) {
	return Call1[R](ctx, c, ResultFunction, id)
}

// RequestResultRaw waits for a submitted tree and returns its
// msgpack-encoded result.
func RequestResultRaw(ctx context.Context, c *Client, id string) ([]byte, error) {
	b := value.AppendArrayHeader(nil, 1)
	b = value.AppendString(b, id)
	return c.Invoke(ctx, ResultFunction, b)
}

// CancelRequest cancels a submitted tree; path names the node meant
// ("" for the root, "args.tuple_element2", …), but the whole tree stops.
func CancelRequest(ctx context.Context, c *Client, id, path string) error {
	_, err := Call2[bool](ctx, c, CancelFunction, id, path)
	return err
}

// ReleaseRequest drops a submitted tree, cancelling it if it still runs.
func ReleaseRequest(ctx context.Context, c *Client, id string) error {
	_, err := Call1[bool](ctx, c, ReleaseFunction, id)
	return err
}

// ResolveStats returns the server's resolution counters: cache hits and
// misses, cache sizes, and how many times each function ran.
func ResolveStats(ctx context.Context, c *Client) (resolve.Stats, error) {
	return Call0[resolve.Stats](ctx, c, CacheStatsFunction)
}

// ResolveCatalog lists the functions request trees may name on the server.
func ResolveCatalog(ctx context.Context, c *Client) ([]ResolvableFunction, error) {
	return Call0[[]ResolvableFunction](ctx, c, ResolveCatalogFunction)
}
