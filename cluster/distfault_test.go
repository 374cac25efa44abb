package cluster

// Faults and bad input in distributed resolution, with in-process
// members: a member dying mid-subtree, a subtree failing on every member,
// trees over the limits, and the pushed status of a distributed tree.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

// withDoom registers, on the members on(i) says, doom+mem(k) string: the
// member's name, or, on a doomed member, the member's death (its server
// closes while the request runs). Every member gets wrap(s) string, a
// Local function that keeps a tree's root where the tree arrived.
func withDoom(t *testing.T, on func(i int) bool) func(i int, w *distWorker) {
	return func(i int, w *distWorker) {
		must(t, arbor.Handle1(w.srv, "wrap", func(ctx context.Context, s string) (string, error) { return "<" + s + ">", nil }, arbor.Local()))
		if !on(i) {
			return
		}
		must(t, arbor.Handle1(w.srv, "doom+mem", func(ctx context.Context, k int) (string, error) {
			if !w.doomed.Load() {
				return w.name, nil
			}
			go w.srv.Close()
			select {
			case <-ctx.Done():
			case <-time.After(testTimeout):
			}
			return "", arbor.Errorf(arbor.Unavailable, "%s died", w.name)
		}))
	}
}

// doomKey returns a k whose doom+mem(k) is owned, among names, by a member
// other than names[0].
func doomKey(t *testing.T, names []string) (int, int) {
	cands := make([]Candidate, len(names))
	for i, n := range names {
		cands[i] = Candidate{Name: n}
	}
	for k := range 64 {
		key := request.New("doom+mem", k).Key()
		if o := (Rendezvous{}).Pick(cands, string(key[:])); o > 0 {
			return k, o
		}
	}
	t.Fatal("no key owned away from the first member")
	return 0, 0
}

// The member resolving a subtree dies: the subtree resolves on another
// member, the tree finishes, and its status names both.
func TestDistributedNodeFailureMoves(t *testing.T) {
	ws := startDistWorkers(t, 3, nil, nil, withDoom(t, func(int) bool { return true }))
	ctx := testContext(t)
	k, owner := doomKey(t, []string{"d0", "d1", "d2"})
	ws[owner].doomed.Store(true)
	id, err := tree.Submit(ctx, ws[0].client, request.New("wrap", request.New("doom+mem", k)))
	must(t, err)
	got, err := tree.Result[string](ctx, ws[0].client, id)
	if err != nil {
		t.Fatalf("tree with a dying member: %v", err)
	}
	if got == "<"+ws[owner].name+">" || !strings.HasPrefix(got, "<d") {
		t.Fatalf("result %q", got)
	}
	st, err := tree.Status(ctx, ws[0].client, id)
	must(t, err)
	sub := st.Subrequests[0]
	if st.Node != "d0" || sub.State != resolve.Finished || !slices.Equal(sub.Tried, []string{ws[owner].name}) || "<"+sub.Node+">" != got {
		t.Errorf("status: root on %q; doom+mem %v on %q, tried %v (result %s)", st.Node, sub.State, sub.Node, sub.Tried, got)
	}
	if ws[0].engine.Stats().Moves != 1 {
		t.Errorf("moves = %d", ws[0].engine.Stats().Moves)
	}
}

// A subtree whose every eligible member dies fails the tree with its path
// and the members tried.
func TestDistributedFailsOnEveryNode(t *testing.T) {
	ws := startDistWorkers(t, 3, nil, nil, withDoom(t, func(i int) bool { return i > 0 }))
	ws[1].doomed.Store(true)
	ws[2].doomed.Store(true)
	ctx := testContext(t)
	id, err := tree.Submit(ctx, ws[0].client, request.New("wrap", request.New("doom+mem", 1)))
	must(t, err)
	_, err = tree.Result[string](ctx, ws[0].client, id)
	if !errArborCode(err, arbor.Unavailable) || !strings.Contains(err.Error(), "args.tuple_element0 (doom+mem): failed on every eligible node (tried d") ||
		!strings.Contains(err.Error(), "d1") || !strings.Contains(err.Error(), "d2") {
		t.Fatalf("subtree failing everywhere: %v", err)
	}
	st, err := tree.Status(ctx, ws[0].client, id)
	must(t, err)
	sub := st.Subrequests[0]
	// The last member tried is Node, the ones before it Tried.
	tried := slices.Sorted(slices.Values(append(slices.Clone(sub.Tried), sub.Node)))
	if sub.State != resolve.Failed || !slices.Equal(tried, []string{"d1", "d2"}) {
		t.Errorf("status: %v on %q, tried %v", sub.State, sub.Node, sub.Tried)
	}
}

// Trees over the depth or node limits are refused by the member that
// received them, before anything is forwarded.
func TestDistributedLimitsRefusedBeforeForwarding(t *testing.T) {
	ws := startDistWorkers(t, 3, nil, nil)
	ctx := testContext(t)
	deep := request.New("leaf+mem", 1)
	for range request.DefaultLimits.MaxDepth + 2 {
		deep = request.New("leaf+mem", deep)
	}
	wide := leafTree(1<<13, 0) // 16383 requests
	resolvesElsewhere := func() int64 {
		return ws[1].engine.Stats().Resolves + ws[2].engine.Stats().Resolves
	}
	before := resolvesElsewhere()
	for name, n := range map[string]*request.Node{"deep": deep, "wide": wide} {
		_, err := tree.Resolve[int](ctx, ws[0].client, n)
		if !errArborCode(err, arbor.InvalidArgument) || !(strings.Contains(err.Error(), "deeper than 64") || strings.Contains(err.Error(), "more than 10000 requests")) {
			t.Errorf("%s tree: %v, want InvalidArgument naming the limit", name, err)
		}
		if _, err := tree.Submit(ctx, ws[0].client, n); !errArborCode(err, arbor.InvalidArgument) {
			t.Errorf("%s tree submitted: %v", name, err)
		}
	}
	if ws[0].engine.Stats().Remote != 0 || resolvesElsewhere() != before || totalLeaves(ws) != 0 {
		t.Errorf("a refused tree reached other members (remote %d, resolves %d → %d, leaves %d)",
			ws[0].engine.Stats().Remote, before, resolvesElsewhere(), totalLeaves(ws))
	}
}

// WatchRequest on a distributed tree streams the start and end of every
// request, those resolved on other members included, in order.
func TestDistributedWatch(t *testing.T) {
	ws := startDistWorkers(t, 3, nil, nil, func(i int, w *distWorker) {
		must(t, arbor.Handle1(w.srv, "len", func(ctx context.Context, s string) (int, error) { return len(s), nil }))
	})
	ctx := testContext(t)
	// 3 levels: pair(pair(slow', slow''), pair(slow''', slow'''')) over
	// leaf(slow) so that every level has work still to do when the watch
	// begins.
	slowLeaf := func(i int) *request.Node {
		return request.New("leaf+mem", request.New("len", request.New("slow+mem", 300+i)))
	}
	n := request.New("pair+mem",
		request.New("pair+mem", slowLeaf(0), slowLeaf(1)),
		request.New("pair+mem", slowLeaf(2), slowLeaf(3)))
	id, err := tree.Submit(ctx, ws[0].client, n)
	must(t, err)
	s, err := tree.WatchRequest(ctx, ws[0].client, id)
	must(t, err)
	defer s.Close()
	first, err := s.Recv()
	if err != nil || first.Kind != tree.WatchStatus || first.Status == nil {
		t.Fatalf("first event: %+v, %v", first, err)
	}
	last := map[string]resolve.State{}
	first.Status.Walk(func(st *resolve.Status, _ int) { last[st.Path] = st.State })
	nodes := map[string]bool{}
	var done bool
	for {
		ev, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		must(t, err)
		switch ev.Kind {
		case tree.WatchNode:
			p := ev.Status.Path
			if ev.Status.State < last[p] {
				t.Errorf("%s went from %v back to %v", p, last[p], ev.Status.State)
			}
			last[p] = ev.Status.State
			if ev.Status.Node != "" {
				nodes[ev.Status.Node] = true
			}
		case tree.WatchDone:
			if ev.Err != "" {
				t.Fatalf("tree failed: %s", ev.Err)
			}
			done = true
		}
	}
	if !done {
		t.Fatal("no done event")
	}
	if len(last) != 15 {
		t.Errorf("watched %d requests, want 15", len(last))
	}
	for p, st := range last {
		if st != resolve.Finished {
			t.Errorf("%s ended %v", p, st)
		}
	}
	if len(nodes) < 2 {
		t.Errorf("changes came from members %v only", nodes)
	}
}

// lineCounter counts log records whose message contains a string.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (c *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *lineCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.lines = append(c.lines, r.Message)
	c.mu.Unlock()
	return nil
}
func (c *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *lineCounter) WithGroup(string) slog.Handler      { return c }
func (c *lineCounter) count(sub string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// With a shared Redis, a +full result computed on one member is a hit on
// another; when Redis goes away resolution goes on from memory, the
// outage logged once per member; when it returns it is used again.
func TestDistributedRedisOutage(t *testing.T) {
	rs := startTestRedisServer(t)
	logs := make([]*lineCounter, 2)
	ws := startDistWorkers(t, 2, nil, nil, func(i int, w *distWorker) {
		must(t, arbor.Handle1(w.srv, "sq+full", func(ctx context.Context, x int) (int, error) { w.leaves.Add(1); return x * x, nil }))
		logs[i] = &lineCounter{}
		r, err := cache.NewRedis(rs.url, cache.RedisOptions{Logger: slog.New(logs[i]), ProbeMin: 50 * time.Millisecond, ProbeMax: 200 * time.Millisecond})
		must(t, err)
		w.treeCfg.SecondaryCache = r
	})
	ctx := testContext(t)
	probe, err := cache.NewRedis(rs.url, cache.RedisOptions{})
	must(t, err)
	defer probe.Close()
	inRedis := func(n *request.Node) bool {
		_, ok, err := probe.Get(ctx, n.Key())
		return err == nil && ok
	}
	// Computed once, on its owner; a hit on the other member's Redis too.
	a := request.New("sq+full", 3)
	if v, err := tree.Resolve[int](ctx, ws[0].client, a); err != nil || v != 9 {
		t.Fatalf("%d, %v", v, err)
	}
	if !inRedis(a) {
		t.Fatal("the +full result is not in Redis")
	}
	before := totalLeaves(ws)
	rs.kill()
	for i := range 20 {
		n := request.New("sq+full", 100+i)
		if v, err := tree.Resolve[int](ctx, ws[i%2].client, n); err != nil || v != (100+i)*(100+i) {
			t.Fatalf("with Redis gone: %d, %v", v, err)
		}
	}
	if got := totalLeaves(ws) - before; got != 20 {
		t.Errorf("with Redis gone, 20 new requests ran %d times", got)
	}
	for i, l := range logs {
		if n := l.count("redis is not answering"); n > 1 {
			t.Errorf("member %d logged the outage %d times", i, n)
		}
	}
	if logs[0].count("redis is not answering")+logs[1].count("redis is not answering") == 0 {
		t.Error("the outage was not logged")
	}
	must(t, rs.start())
	// Back: new results reach Redis again.
	eventually(t, func() bool {
		n := request.New("sq+full", 1000+int(time.Now().UnixNano()%1000000))
		_, err := tree.Resolve[int](ctx, ws[0].client, n)
		return err == nil && inRedis(n)
	}, "results to reach Redis once it is back")
}

// A function no member has is NotFound, and resolves once it is
// registered on the member that got the tree (another member learns of
// it when that member's catalog is fetched again: not covered here).
func TestDistributedFunctionRegisteredLater(t *testing.T) {
	ws := startDistWorkers(t, 2, nil, nil)
	ctx := testContext(t)
	n := request.New("cheap", request.New("late+mem", 1)) // cheap is Local: the root stays at d0
	if _, err := tree.Resolve[int](ctx, ws[0].client, n); !errArborCode(err, arbor.NotFound) || !strings.Contains(err.Error(), `no live member has function "late+mem"`) {
		t.Fatalf("before: %v", err)
	}
	must(t, arbor.Handle1(ws[0].srv, "late+mem", func(ctx context.Context, x int) (int, error) { return 10 * x, nil }))
	if v, err := tree.Resolve[int](ctx, ws[0].client, n); err != nil || v != 11 {
		t.Fatalf("after registering it: %d, %v", v, err)
	}
}

// A function registered on a member after the others fetched its catalog
// reaches them with the next CatalogRefresh.
func TestDistributedCatalogRefresh(t *testing.T) {
	ws := startDistWorkers(t, 2, nil, nil)
	ctx := testContext(t)
	// Called by hand below rather than waiting the 10 s default.
	must(t, arbor.Handle1(ws[1].srv, "later+mem", func(ctx context.Context, x int) (int, error) { return 10 * x, nil }))
	n := request.New("cheap", request.New("later+mem", 1))
	if _, err := tree.Resolve[int](ctx, ws[0].client, n); !errArborCode(err, arbor.NotFound) {
		t.Fatalf("before d0 knows: %v", err)
	}
	ws[0].dist.refreshCatalogs(ctx, true)
	if v, err := tree.Resolve[int](ctx, ws[0].client, n); err != nil || v != 11 {
		t.Fatalf("after refreshing the catalogs: %d, %v", v, err)
	}
}
