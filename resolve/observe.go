package resolve

import (
	"context"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
)

// Observer sees what an engine does, for metrics and tracing
// (Config.Observer; nil by default, and then it costs a pointer check).
// Its methods run on the resolving goroutines: they must be fast and must
// never block. For the live status of asynchronous trees, Subscribe
// instead.
type Observer interface {
	// TreeStarted is called when a tree starts resolving (Resolve, or a
	// Submit that was accepted), TreeEnded when it is done; async tells
	// which. A request answered by MemoryHit counts as a tree too.
	TreeStarted(ctx context.Context, async bool)
	TreeEnded(ctx context.Context, async bool, err error)
	// NodeStarted is called when the engine starts resolving one request
	// of a tree (its function found); the context it returns is used for
	// everything done for that request (cache lookups, its subrequests,
	// the function's run), so a tracer starts a span here. NodeEnded is
	// called when the request is resolved (err nil) or failed. The
	// NodeInfo is valid only during the call.
	NodeStarted(ctx context.Context, n *NodeInfo) context.Context
	NodeEnded(ctx context.Context, n *NodeInfo, err error)
	// CacheLookup is called for every cache tier consulted for a request
	// at a cached level: tier is TierMemory or the secondary's name
	// (SecondaryTier), hit whether it held the result. ctx is the
	// request's (from NodeStarted).
	CacheLookup(ctx context.Context, level request.Level, tier string, hit bool)
	// Joined is called when a request joins an identical one in flight
	// instead of running again (single flight).
	Joined(ctx context.Context, level request.Level)
	// Retried is called before a function is run again after a retryable
	// error.
	Retried(ctx context.Context, id string)
}

// NodeInfo describes one request of a tree to an Observer.
type NodeInfo struct {
	ID    string // the function id (uuid, suffix included)
	Title string
	Path  string // "request", "args.tuple_element2", …
	Level request.Level
}

// The names of cache tiers an Observer sees.
const (
	TierMemory = "memory"
	TierDisk   = "disk"
	TierRedis  = "redis"
	// TierSecondary names a secondary cache of another type.
	TierSecondary = "secondary"
)

// SecondaryTier names the tier of a secondary cache: TierDisk, TierRedis
// or TierSecondary.
func SecondaryTier(c cache.Cache) string {
	switch c.(type) {
	case *cache.Disk:
		return TierDisk
	case *cache.Redis:
		return TierRedis
	}
	return TierSecondary
}

// Caches returns the engine's memory cache and its secondary cache (nil
// without one), for introspection: their Stats, say.
func (e *Engine) Caches() (memory, secondary cache.Cache) { return e.mem, e.sec }

// observedNode is node with Config.Observer watching.
func (e *Engine) observedNode(ctx context.Context, n *request.Node, path *request.Path, st tracker, pinned bool) ([]byte, error) {
	obs := e.cfg.Observer
	info := NodeInfo{ID: n.ID, Title: n.Title, Path: path.String(), Level: n.Level()}
	ctx = obs.NodeStarted(ctx, &info)
	res, err := e.resolveNode(ctx, n, path, st, pinned)
	obs.NodeEnded(ctx, &info, err)
	return res, err
}

// observeLookup reports a cache lookup, if observed.
func (e *Engine) observeLookup(ctx context.Context, level request.Level, tier string, hit bool) {
	if obs := e.cfg.Observer; obs != nil {
		obs.CacheLookup(ctx, level, tier, hit)
	}
}
