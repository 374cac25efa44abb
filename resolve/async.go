package resolve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// State is where one request of an asynchronous tree stands.
type State uint8

// The states, in the order a request normally passes through them.
const (
	Created            State = iota // not started
	SubrequestsRunning              // resolving its subrequests
	Running                         // its function runs (or an identical request's does)
	Finished                        // done; Cached tells whether from a cache
	Failed                          // done with an error
	Cancelled                       // cancelled, or stopped because the tree failed or was cancelled
	Skipped                         // not needed: the tree finished without it (e.g. a cached parent)
)

var stateNames = [...]string{"created", "subrequests running", "running", "finished", "failed", "cancelled", "skipped"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Done reports whether the state is final.
func (s State) Done() bool { return s >= Finished }

// Status is a snapshot of one request of an asynchronous tree and, in
// Subrequests, of its subrequests in argument order.
type Status struct {
	Path     string `msgpack:"path" json:"path"` // "request", "args.tuple_element2", …
	UUID     string `msgpack:"uuid" json:"uuid"`
	Title    string `msgpack:"title" json:"title"`
	State    State  `msgpack:"state" json:"state"`
	Cached   bool   `msgpack:"cached" json:"cached"`     // the result came from a cache
	Attempts int    `msgpack:"attempts" json:"attempts"` // function runs, retries included
	Error    string `msgpack:"error" json:"error"`       // for Failed and Cancelled
	// Node names the node that resolves (or resolved) the request, when
	// the engine has a name or a placer: a cluster member.
	Node string `msgpack:"node,omitempty" json:"node,omitempty"`
	// Tried names the nodes the request was placed on before Node and
	// that failed while resolving it: the request moved from them.
	Tried       []string  `msgpack:"tried,omitempty" json:"tried,omitempty"`
	Subrequests []*Status `msgpack:"subrequests" json:"subrequests"`
}

// Walk calls fn for s and its subrequests, depth first, with their depth.
func (s *Status) Walk(fn func(s *Status, depth int)) { s.walk(fn, 0) }

func (s *Status) walk(fn func(*Status, int), depth int) {
	fn(s, depth)
	for _, c := range s.Subrequests {
		c.walk(fn, depth+1)
	}
}

// track is the live status of one request of an asynchronous tree. Its
// methods do nothing on a nil track (synchronous resolution).
type track struct {
	path     string
	id       string
	title    string
	state    atomic.Uint32
	cached   atomic.Bool
	attempts atomic.Int32
	err      atomic.Pointer[string]
	node     atomic.Pointer[string]   // where it resolves; nil: not placed yet
	tried    atomic.Pointer[[]string] // nodes it moved from
	children []*track                 // by argument index; nil for value arguments
	pub      *treePub                 // publishes changes to subscribers (watch.go)
}

func newTrack(n *request.Node, path *request.Path) *track {
	t := &track{path: path.String(), id: n.ID, title: n.Title, children: make([]*track, len(n.Args))}
	for i, a := range n.Args {
		if a.Node != nil {
			cp := path.Child(i)
			t.children[i] = newTrack(a.Node, &cp)
		}
	}
	return t
}

func (t *track) child(i int) *track {
	if t == nil {
		return nil
	}
	return t.children[i]
}

// set moves to s unless the state is already final.
func (t *track) set(s State) {
	if t == nil {
		return
	}
	for {
		old := t.state.Load()
		if State(old).Done() {
			return
		}
		if t.state.CompareAndSwap(old, uint32(s)) {
			if old != uint32(s) {
				t.changed()
			}
			return
		}
	}
}

func (t *track) attempt() {
	if t != nil && t.attempts.Add(1) > 1 {
		t.changed() // a retry: the attempt count is news
	}
}

func (t *track) finish(cached bool) {
	if t == nil {
		return
	}
	if cached {
		t.cached.Store(true)
	}
	t.set(Finished)
}

func (t *track) fail(err error) {
	if t == nil {
		return
	}
	msg := err.Error()
	if State(t.state.Load()).Done() {
		return
	}
	t.err.Store(&msg)
	if status.CodeOf(err) == status.Canceled {
		t.set(Cancelled)
	} else {
		t.set(Failed)
	}
}

func (t *track) cancelled() {
	if t == nil {
		return
	}
	t.set(Cancelled)
}

// cancelledBy ends the request as cancelled, keeping err's message.
func (t *track) cancelledBy(err error) {
	if t == nil || State(t.state.Load()).Done() {
		return
	}
	msg := err.Error()
	t.err.Store(&msg)
	t.set(Cancelled)
}

// endAll ends every request not yet done with state s: the tree is over.
func (t *track) endAll(s State) {
	if t == nil {
		return
	}
	t.set(s)
	for _, c := range t.children {
		c.endAll(s)
	}
}

// setNode records where the request resolves (no news by itself: the
// state change that follows publishes it).
func (t *track) setNode(name string) {
	if t == nil || name == "" {
		return
	}
	if p := t.node.Load(); p != nil && *p == name {
		return
	}
	t.storeNode(name)
}

// storeNode is apart from setNode so that only a stored name is moved to
// the heap, not every name setNode is called with (on a nil track, say).
func (t *track) storeNode(name string) { t.node.Store(&name) }

// placed records that the request goes to node name, after the nodes in
// tried failed, and publishes it.
func (t *track) placed(name string, tried []string) {
	if t == nil {
		return
	}
	t.node.Store(&name)
	if len(tried) > 0 {
		c := append([]string(nil), tried...)
		t.tried.Store(&c)
	}
	t.changed()
}

// moved forgets what the failed node reported of the request's subtree:
// the next node resolves it afresh.
func (t *track) moved() {
	if t == nil {
		return
	}
	t.state.Store(uint32(Created))
	t.cached.Store(false)
	t.attempts.Store(0)
	t.err.Store(nil)
	for _, c := range t.children {
		c.forget()
	}
}

func (t *track) forget() {
	if t == nil {
		return
	}
	// A request still Created may have been placed there already (placed
	// names the node before anything starts): it forgets that node too.
	if t.state.Swap(uint32(Created)) != uint32(Created) || t.node.Load() != nil || t.tried.Load() != nil {
		t.node.Store(nil)
		t.tried.Store(nil)
		t.cached.Store(false)
		t.attempts.Store(0)
		t.err.Store(nil)
		t.changed()
	}
	for _, c := range t.children {
		c.forget()
	}
}

// graft applies a status change that the node resolving t's subtree
// reported (s.Path is a full path) to the request it names.
func (t *track) graft(s *Status) {
	rel := ""
	switch {
	case s.Path == t.path:
	case t.path == "request":
		rel = s.Path
	default:
		var ok bool
		if rel, ok = strings.CutPrefix(s.Path, t.path+"."); !ok {
			return // not in this subtree: ignore
		}
	}
	idx, err := request.ParsePath(rel)
	if err != nil {
		return
	}
	d := t.find(idx)
	if d == nil || State(d.state.Load()).Done() || s.State > Skipped {
		return
	}
	if s.Node != "" {
		d.setNode(s.Node)
	}
	if len(s.Tried) > 0 {
		c := append([]string(nil), s.Tried...)
		d.tried.Store(&c)
	}
	d.cached.Store(s.Cached)
	d.attempts.Store(int32(min(s.Attempts, 1<<30)))
	if s.Error != "" {
		msg := s.Error
		d.err.Store(&msg)
	}
	d.state.Store(uint32(s.State))
	d.changed()
}

// fillPlace copies the error, node and tried list into s.
func (t *track) fillPlace(s *Status) {
	if e := t.err.Load(); e != nil {
		s.Error = *e
	}
	if n := t.node.Load(); n != nil {
		s.Node = *n
	}
	if tr := t.tried.Load(); tr != nil {
		s.Tried = *tr
	}
}

func (t *track) find(idx []int) *track {
	for _, i := range idx {
		if t == nil || i < 0 || i >= len(t.children) {
			return nil
		}
		t = t.children[i]
	}
	return t
}

func (t *track) snapshot() *Status {
	s := &Status{
		Path:     t.path,
		UUID:     t.id,
		Title:    t.title,
		State:    State(t.state.Load()),
		Cached:   t.cached.Load(),
		Attempts: int(t.attempts.Load()),
	}
	t.fillPlace(s)
	for _, c := range t.children {
		if c != nil {
			s.Subrequests = append(s.Subrequests, c.snapshot())
		}
	}
	return s
}

// tree is one asynchronous resolution.
type tree struct {
	root      *track
	cancel    context.CancelFunc
	done      chan struct{}
	res       []byte
	err       error
	submitted time.Time
	finished  time.Time // zero while running; guarded by Engine.mu
}

func newTreeID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func notFound(id string) error {
	return status.Errorf(status.NotFound, "no request tree %q (never submitted, released, or dropped after finishing)", id)
}

// Submit starts resolving the tree in the background and returns its id.
// The tree runs under a context that keeps ctx's values but not its
// cancellation: it ends when it finishes, when Cancel or Release is
// called, or when the engine closes. A finished tree is kept for
// Config.KeepFinished.
func (e *Engine) Submit(ctx context.Context, n *request.Node) (string, error) {
	if err := n.Validate(e.cfg.Limits); err != nil {
		return "", err
	}
	n, err := e.normalize(n, nil)
	if err != nil {
		return "", err
	}
	now := time.Now()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return "", status.New(status.Unavailable, "resolve: engine is closed")
	}
	e.sweepLocked(now, true)
	if len(e.trees) >= e.cfg.MaxTrees {
		e.mu.Unlock()
		return "", status.Errorf(status.ResourceExhausted, "resolve: %d request trees held (the limit); release some", len(e.trees))
	}
	id := newTreeID()
	tctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t := &tree{root: newTrack(n, nil), cancel: cancel, done: make(chan struct{}), submitted: now}
	t.root.setPub(&treePub{e: e, id: id})
	e.trees[id] = t
	e.wg.Add(1)
	e.mu.Unlock()
	e.resolves.Add(1)
	e.publishTree(EventSubmitted, id, t, "")
	obs := e.cfg.Observer
	if obs != nil {
		obs.TreeStarted(tctx, true)
	}
	go func() {
		defer e.wg.Done()
		res, err := e.node(tctx, n, nil, t.root)
		if err != nil {
			e.failures.Add(1)
		}
		if err != nil {
			t.root.endAll(Cancelled)
		} else {
			t.root.endAll(Skipped) // what is left was not needed
		}
		if obs != nil {
			obs.TreeEnded(tctx, true, err)
		}
		cancel()
		e.mu.Lock()
		t.res, t.err, t.finished = res, err, time.Now()
		e.mu.Unlock()
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		e.publishTree(EventDone, id, t, msg)
		close(t.done)
	}()
	return id, nil
}

// sweepLocked drops trees finished longer than KeepFinished ago, at most
// once a second unless forced.
func (e *Engine) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(e.lastSweep) < time.Second {
		return
	}
	e.lastSweep = now
	for id, t := range e.trees {
		if !t.finished.IsZero() && now.Sub(t.finished) > e.cfg.KeepFinished {
			delete(e.trees, id)
			e.publishTree(EventDropped, id, nil, "")
		}
	}
}

func (e *Engine) tree(id string) (*tree, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sweepLocked(time.Now(), false)
	t, ok := e.trees[id]
	if !ok || (!t.finished.IsZero() && time.Since(t.finished) > e.cfg.KeepFinished) {
		return nil, notFound(id)
	}
	return t, nil
}

// Status returns a snapshot of the tree's status: one node per request.
func (e *Engine) Status(id string) (*Status, error) {
	t, err := e.tree(id)
	if err != nil {
		return nil, err
	}
	return t.root.snapshot(), nil
}

// Result waits for the tree to finish (or ctx to end) and returns its
// result or error. The result may be shared with the cache: do not modify
// it.
func (e *Engine) Result(ctx context.Context, id string) ([]byte, error) {
	t, err := e.tree(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
		return t.res, t.err
	case <-ctx.Done():
		return nil, status.FromError(ctx.Err())
	}
}

// Done returns a channel closed when the tree finishes.
func (e *Engine) Done(id string) (<-chan struct{}, error) {
	t, err := e.tree(id)
	if err != nil {
		return nil, err
	}
	return t.done, nil
}

// Cancel cancels the tree: every handler it reached sees its context
// cancelled, and requests not yet done end as Cancelled. path names the
// node the caller meant ("" or "request" for the root,
// "args.tuple_element2" …); it must exist, but cancelling any node cancels
// the whole tree, whose result no longer can be had. Cancelling a finished
// tree does nothing.
func (e *Engine) Cancel(id, path string) error {
	t, err := e.tree(id)
	if err != nil {
		return err
	}
	idx, err := request.ParsePath(path)
	if err != nil {
		return err
	}
	if t.root.find(idx) == nil {
		return status.Errorf(status.NotFound, "request tree %s has no request at %s", id, request.FormatPath(idx))
	}
	t.cancel()
	return nil
}

// Release drops the tree, cancelling it if it still runs.
func (e *Engine) Release(id string) error {
	e.mu.Lock()
	t, ok := e.trees[id]
	delete(e.trees, id)
	e.mu.Unlock()
	if !ok {
		return notFound(id)
	}
	e.publishTree(EventDropped, id, nil, "")
	t.cancel()
	return nil
}
