package resolve

// This file holds the placement hook: how the engine lets a request of a
// tree resolve on another node (a cluster member) while staying free of
// the network itself. Package cluster implements the default Placer.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// Placer decides, per request of a tree, where it resolves. The engine
// asks it about every request before resolving it (except the root of a
// tree resolved with ResolveHere, which is pinned to this engine), so a
// subtree handed to another node is placed again, level by level, there.
type Placer interface {
	// Place returns nil to resolve n here, or the Place to resolve it at.
	// tried names the nodes where resolving n already failed
	// (ErrNodeFailed), which must not be chosen again. An error fails the
	// request (NotFound for a function no live node has, say); the engine
	// adds the request's path to it. n's content key (n.Key) is not
	// passed: hashing a subtree costs more than most placements, which
	// need no key (one eligible node), so a placer that does computes it.
	Place(ctx context.Context, n *request.Node, tried []string) (Place, error)
}

// Place is a node a request can be resolved at.
type Place interface {
	// Name names the node in status trees (Status.Node) and errors.
	Name() string
	// Resolve resolves the subtree n, whose path in the tree is path
	// (argument indexes from the root), and returns its root's result.
	// When report is not nil it is called, in order, with the status of
	// each request of the subtree as it changes there (Status.Path is the
	// full path, Subrequests empty). An error that says the node failed
	// rather than the request (unreachable, died mid-call) must wrap
	// ErrNodeFailed: the engine then places n again elsewhere. Cancelling
	// ctx must cancel the remote work.
	Resolve(ctx context.Context, n *request.Node, path []int, report func(*Status)) ([]byte, error)
}

// ErrNodeFailed is wrapped by errors of Place.Resolve that mean the node
// failed, not the request: trees are pure, so the engine resolves the
// request again on another node.
var ErrNodeFailed = errors.New("resolve: node failed")

// maxPlacements bounds the nodes one request is tried on.
const maxPlacements = 16

// placement is the engine's placer and its own node name.
type placement struct {
	name string
	p    Placer
}

// SetPlacer installs (or, with a nil p, removes) the placer and names
// this engine's node in status trees. It is for a placer that needs the
// engine before it can work (a cluster's serves subtrees with it); one
// known up front goes in Config.Placer. Requests already placed are not
// affected.
func (e *Engine) SetPlacer(name string, p Placer) {
	if p == nil {
		e.placer.Store(&placement{name: name})
		return
	}
	e.placer.Store(&placement{name: name, p: p})
}

// NodeName returns the name this engine's node has in status trees ("" if
// none was given).
func (e *Engine) NodeName() string {
	if pl := e.placer.Load(); pl != nil {
		return pl.name
	}
	return ""
}

// ResolveHere resolves n on this engine on behalf of another node: its
// root is not placed elsewhere (its subrequests are, as usual), which is
// what makes placement strictly descend a tree. path is n's position in
// the tree it belongs to, so that errors and statuses name full paths;
// report, when not nil, receives every status change of n's requests in
// order (as Place.Resolve describes). Concurrent identical subtrees from
// different nodes run once here, as identical requests always do.
func (e *Engine) ResolveHere(ctx context.Context, n *request.Node, path []int, report func(*Status)) ([]byte, error) {
	if e.isClosed.Load() {
		return nil, status.New(status.Unavailable, "resolve: engine is closed")
	}
	if err := n.Validate(e.cfg.Limits); err != nil {
		return nil, err
	}
	if len(path) > e.cfg.Limits.MaxDepth {
		return nil, status.Errorf(status.InvalidArgument, "subtree path has %d levels, more than the depth limit %d", len(path), e.cfg.Limits.MaxDepth)
	}
	var base *request.Path
	chain := make([]request.Path, len(path))
	for i, x := range path {
		if x < 0 {
			return nil, status.Errorf(status.InvalidArgument, "subtree path: negative index %d", x)
		}
		chain[i] = base.Child(x)
		base = &chain[i]
	}
	n, err := e.normalize(n, base)
	if err != nil {
		return nil, err
	}
	e.resolves.Add(1)
	var st tracker
	var pub *treePub
	if report != nil {
		st = newTrack(n, base)
		pub = &treePub{e: e, report: report}
		st.setPub(pub)
	}
	res, err := e.nodeAt(ctx, n, base, st, true)
	if err != nil {
		e.failures.Add(1)
		st.endAll(Cancelled)
	} else {
		st.endAll(Skipped)
	}
	return res, err
}

// place asks the placer about n; done reports that n was resolved (or
// failed) elsewhere, and false that it resolves here; known is n's
// content key if place computed it.
func (e *Engine) place(ctx context.Context, pl *placement, n *request.Node, path *request.Path, st tracker) ([]byte, error, bool, keyHint) {
	level := n.Level()
	keyed := level.Cached() && !level.ValueBased()
	var known keyHint
	if keyed {
		known = keyHint{key: keyOf(n), ok: true}
		key := known.key
		if e.cfg.Authorize == nil {
			// Held here already (this node was its owner once): no round trip.
			if v, ok, err := e.mem.Get(ctx, key); err == nil && ok {
				e.memHits.Add(1)
				e.observeLookup(ctx, level, TierMemory, true)
				st.setNode(pl.name)
				st.finish(true)
				return v, nil, true, known
			}
		}
	}
	p, err := pl.p.Place(ctx, n, nil)
	if err != nil {
		err = nodeError(path, n, err)
		st.fail(err)
		return nil, err, true, known
	}
	if p == nil {
		return nil, nil, false, known
	}
	if err := e.authorizeTree(ctx, n, path); err != nil {
		st.fail(err)
		return nil, err, true, known
	}
	if keyed && level.UsesSecondary() && e.sec != nil {
		// A shared secondary cache (Redis) may hold what the owner would
		// compute: one lookup here is cheaper than the trip there, and it
		// answers on a node that never resolved the tree before.
		if v, ok := e.secondaryHit(ctx, known.key, level); ok {
			st.setNode(pl.name)
			st.finish(true)
			return v, nil, true, known
		}
	}
	e.remotes.Add(1)
	if keyed {
		// Identical subtrees of this node's trees make one trip.
		res, err := e.shared(ctx, known.key, level, st, n, path, func(fctx context.Context) ([]byte, error) {
			return e.remote(fctx, pl, p, n, path, st, known)
		})
		return res, err, true, known
	}
	res, err := e.remote(ctx, pl, p, n, path, st, known)
	return res, err, true, known
}

// authorizeTree asks Config.Authorize about every request of a subtree
// about to be resolved elsewhere: the caller's context is here, not there.
func (e *Engine) authorizeTree(ctx context.Context, n *request.Node, path *request.Path) error {
	if e.cfg.Authorize == nil {
		return nil
	}
	if err := e.cfg.Authorize(ctx, n.ID); err != nil {
		return nodeError(path, n, err)
	}
	return e.authorizeArgs(ctx, n, path)
}

// authorizeArgs asks Config.Authorize about every request below n (not n
// itself): for a result of n that did not resolve them for this caller —
// a cache hit, or a run another caller started.
func (e *Engine) authorizeArgs(ctx context.Context, n *request.Node, path *request.Path) error {
	if e.cfg.Authorize == nil {
		return nil
	}
	for i, a := range n.Args {
		if a.Node != nil {
			cp := path.Child(i)
			if err := e.authorizeTree(ctx, a.Node, &cp); err != nil {
				return err
			}
		}
	}
	return nil
}

// remote resolves n at p, and on a node failure places it again, until
// it resolves, fails there, or no eligible node is left.
func (e *Engine) remote(ctx context.Context, pl *placement, p Place, n *request.Node, path *request.Path, st tracker, known keyHint) ([]byte, error) {
	var report func(*Status)
	if st != nil {
		report = st.graft
	}
	idx := path.Indexes()
	var tried []string
	for {
		name := p.Name()
		st.placed(name, tried)
		res, err := p.Resolve(ctx, n, idx, report)
		if err == nil {
			st.finish(false) // the node's own report has said so already, normally
			return res, nil
		}
		if ctx.Err() != nil {
			err = nodeError(path, n, status.FromError(ctx.Err()))
			st.cancelledBy(err)
			return nil, err
		}
		if !errors.Is(err, ErrNodeFailed) {
			// The request failed there; its error names its path already.
			st.fail(err)
			return nil, err
		}
		nodeErr := err
		tried = append(tried, name)
		e.moves.Add(1)
		e.log.Info("resolve: node failed while resolving a subtree; placing it again",
			"path", path.String(), "id", n.ID, "node", name, "err", err)
		st.moved()
		var next Place
		if len(tried) < maxPlacements {
			next, err = pl.p.Place(ctx, n, tried)
		} else {
			err = status.Errorf(status.Unavailable, "tried on %d nodes", len(tried))
		}
		if err == nil && next != nil && slices.Contains(tried, next.Name()) {
			next, err = nil, status.Errorf(status.Unavailable, "the placer chose %s again", next.Name())
		}
		if err != nil {
			code := status.CodeOf(err)
			if code == status.NotFound {
				code = status.Unavailable // it existed: the nodes that had it failed
			}
			err = nodeError(path, n, &status.Error{Code: code,
				Message: fmt.Sprintf("failed on every eligible node (tried %s): %s; %s", strings.Join(tried, ", "), lastMessage(nodeErr), lastMessage(err))})
			st.fail(err)
			return nil, err
		}
		if next == nil {
			st.placed(pl.name, tried)
			return e.local(ctx, n, path, st, known, true)
		}
		p = next
	}
}

func lastMessage(err error) string {
	if se := status.FromError(err); se != nil && se.Message != "" {
		return se.Message
	}
	return err.Error()
}

// secondaryHit looks key up in the secondary cache alone (the memory
// cache was asked already), keeping a hit in memory. A miss is not
// counted: the node the request goes to counts it.
func (e *Engine) secondaryHit(ctx context.Context, key request.Key, level request.Level) ([]byte, bool) {
	v, ok, err := e.secGet(ctx, key)
	if err != nil {
		e.cacheError("secondary get", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	e.secHits.Add(1)
	e.observeLookup(ctx, level, e.secTier, true)
	if err := e.mem.Put(ctx, key, v); err != nil {
		e.cacheError("memory put", err)
	}
	return v, true
}

// keyOf is n.Key() out of line: inlined, its 1 KiB scratch buffer would
// sit in the frame of every request's placement, and deep trees resolving
// in fresh goroutines pay for large frames in stack growth.
//
//go:noinline
func keyOf(n *request.Node) request.Key { return n.Key() }
