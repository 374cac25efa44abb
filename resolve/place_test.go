package resolve

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// enginePlace resolves subtrees on another engine in this process, as a
// cluster member would over the wire; down makes it fail as a dead node.
type enginePlace struct {
	name string
	e    *Engine
	down bool
	// block, when set, holds Resolve until ctx ends (a node that hangs,
	// to see cancellation reach it).
	block   chan struct{}
	mu      sync.Mutex
	reports []string
}

func (p *enginePlace) Name() string { return p.name }

func (p *enginePlace) Resolve(ctx context.Context, n *request.Node, path []int, report func(*Status)) ([]byte, error) {
	if p.down {
		return nil, fmt.Errorf("%s: connection refused: %w", p.name, ErrNodeFailed)
	}
	if p.block != nil {
		close(p.block)
		<-ctx.Done()
		return nil, status.FromError(ctx.Err())
	}
	var rep func(*Status)
	if report != nil {
		rep = func(s *Status) {
			p.mu.Lock()
			p.reports = append(p.reports, s.Path+" "+s.State.String()+" @"+s.Node)
			p.mu.Unlock()
			report(s)
		}
	}
	return p.e.ResolveHere(ctx, n, path, rep)
}

// prefixPlacer places requests whose id starts with "r_" on the first
// place not tried, and the rest here.
type prefixPlacer struct {
	places []*enginePlace
	asked  map[string]int
	mu     sync.Mutex
}

func (pp *prefixPlacer) Place(ctx context.Context, n *request.Node, tried []string) (Place, error) {
	pp.mu.Lock()
	pp.asked[n.ID]++
	pp.mu.Unlock()
	if n.ID == "nowhere" {
		return nil, status.Errorf(status.NotFound, "no live node has function %q", n.ID)
	}
	if !strings.HasPrefix(n.ID, "r_") {
		return nil, nil
	}
	for _, p := range pp.places {
		if !contains(tried, p.name) {
			return p, nil
		}
	}
	return nil, status.Errorf(status.Unavailable, "no eligible node left")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func placeCatalog() MapCatalog {
	m := testCatalog()
	for _, lvl := range []string{"", "+mem"} {
		m["r_add"+lvl] = intFunc(2, add)
	}
	return m
}

// A tree whose r_ subtrees resolve on node b: the result is right, b ran
// them (and the subtree's own local requests), a's status tree names b
// for them and a for the rest, and b's reported changes carry full paths.
func TestPlacedSubtreesResolveElsewhereAndShowInStatus(t *testing.T) {
	b := newEngine(t, Config{Catalog: placeCatalog(), Name: "b"})
	pb := &enginePlace{name: "b", e: b}
	pl := &prefixPlacer{places: []*enginePlace{pb}, asked: map[string]int{}}
	a := newEngine(t, Config{Catalog: placeCatalog(), Name: "a", Placer: pl})
	// b places nothing further: it has no placer.
	n := request.New("add", request.New("r_add+mem", request.New("add", 1, 2), 3), request.New("add", 4, 5))
	id, err := a.Submit(testContext(t), n)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Result(testContext(t), id)
	if err != nil || len(res) == 0 {
		t.Fatal(err)
	}
	if got := resolveInt(t, a, n); got != 15 {
		t.Fatalf("got %d", got)
	}
	if b.Calls("r_add+mem") != 1 || b.Calls("add") != 1 || a.Calls("r_add+mem") != 0 || a.Calls("add") != 4 {
		t.Errorf("calls: b r_add+mem=%d add=%d, a r_add+mem=%d add=%d; want 1 1 0 4 (the second time from b's cache)",
			b.Calls("r_add+mem"), b.Calls("add"), a.Calls("r_add+mem"), a.Calls("add"))
	}
	st, err := a.Status(id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"request":             "a",
		"args.tuple_element0": "b",
		"args.tuple_element0.args.tuple_element0": "b",
		"args.tuple_element1":                     "a",
	}
	st.Walk(func(s *Status, _ int) {
		if s.State != Finished {
			t.Errorf("%s: %v", s.Path, s.State)
		}
		if w, ok := want[s.Path]; !ok || s.Node != w {
			t.Errorf("%s resolved on %q, want %q", s.Path, s.Node, w)
		}
	})
	pb.mu.Lock()
	reps := strings.Join(pb.reports, "; ")
	pb.mu.Unlock()
	for _, w := range []string{"args.tuple_element0 running @b", "args.tuple_element0.args.tuple_element0 finished @b", "args.tuple_element0 finished @b"} {
		if !strings.Contains(reps, w) {
			t.Errorf("b's reports %q lack %q", reps, w)
		}
	}
	if s := a.Stats(); s.Remote < 1 {
		t.Errorf("a's stats: %d remote", s.Remote)
	}
}

// A node that fails mid-subtree: the subtree moves to the next node, the
// status names both; when every node fails, the error names the path and
// every node tried.
func TestPlacedSubtreeMovesAndFailsWithNodesTried(t *testing.T) {
	c := newEngine(t, Config{Catalog: placeCatalog(), Name: "c"})
	dead := &enginePlace{name: "b", down: true}
	pc := &enginePlace{name: "c", e: c}
	pl := &prefixPlacer{places: []*enginePlace{dead, pc}, asked: map[string]int{}}
	a := newEngine(t, Config{Catalog: placeCatalog(), Name: "a", Placer: pl})
	n := request.New("add", request.New("r_add", 1, 2), 3)
	id, err := a.Submit(testContext(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Result(testContext(t), id); err != nil {
		t.Fatal(err)
	}
	st, _ := a.Status(id)
	sub := st.Subrequests[0]
	if sub.Node != "c" || len(sub.Tried) != 1 || sub.Tried[0] != "b" || sub.State != Finished {
		t.Errorf("moved subtree: node %q tried %v state %v; want c, [b], finished", sub.Node, sub.Tried, sub.State)
	}
	if a.Stats().Moves != 1 {
		t.Errorf("moves = %d", a.Stats().Moves)
	}

	pc.down = true
	_, err = a.Resolve(testContext(t), request.New("add", request.New("r_add", 5, 6), 3))
	if err == nil {
		t.Fatal("resolved with every node down")
	}
	msg := err.Error()
	for _, w := range []string{"args.tuple_element0 (r_add)", "tried b, c", "connection refused"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
	if status.CodeOf(err) != status.Unavailable {
		t.Errorf("code %v", status.CodeOf(err))
	}
}

// The placer's refusal (no node has the function) fails the request with
// its path; a remote error is the request's own, not a node failure: no
// move.
func TestPlacerErrorsAndRemoteErrors(t *testing.T) {
	b := newEngine(t, Config{Catalog: placeCatalog(), Name: "b"})
	pl := &prefixPlacer{places: []*enginePlace{{name: "b", e: b}}, asked: map[string]int{}}
	a := newEngine(t, Config{Catalog: placeCatalog(), Name: "a", Placer: pl})
	_, err := a.Resolve(testContext(t), request.New("add", request.New("nowhere", 1), 2))
	if status.CodeOf(err) != status.NotFound || !strings.Contains(err.Error(), `args.tuple_element0 (nowhere): no live node has function "nowhere"`) {
		t.Errorf("err = %v", err)
	}
	// r_add with one argument: b refuses it, naming the full path.
	_, err = a.Resolve(testContext(t), request.New("add", 1, request.New("r_add", 1)))
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "args.tuple_element1 (r_add): r_add takes 2") {
		t.Errorf("err = %v", err)
	}
	if a.Stats().Moves != 0 {
		t.Errorf("a remote error moved the request")
	}
}

// Cancelling a tree cancels its remote subtree (the place sees its
// context end); the status shows the subtree cancelled.
func TestCancelReachesPlacedSubtree(t *testing.T) {
	hang := &enginePlace{name: "b", block: make(chan struct{})}
	pl := &prefixPlacer{places: []*enginePlace{hang}, asked: map[string]int{}}
	a := newEngine(t, Config{Catalog: placeCatalog(), Name: "a", Placer: pl})
	id, err := a.Submit(testContext(t), request.New("add", request.New("r_add", 1, 2), 3))
	if err != nil {
		t.Fatal(err)
	}
	<-hang.block
	if err := a.Cancel(id, ""); err != nil {
		t.Fatal(err)
	}
	_, err = a.Result(testContext(t), id)
	if status.CodeOf(err) != status.Canceled {
		t.Fatalf("err = %v", err)
	}
	st, _ := a.Status(id)
	if sub := st.Subrequests[0]; sub.State != Cancelled || sub.Node != "b" {
		t.Errorf("subtree: %v on %q", sub.State, sub.Node)
	}
}

// ResolveHere pins the root: the placer is not asked about it, only about
// its subrequests; bad paths are refused.
func TestResolveHerePinsRoot(t *testing.T) {
	b := newEngine(t, Config{Catalog: placeCatalog(), Name: "b"})
	pl := &prefixPlacer{places: []*enginePlace{{name: "b", e: b}}, asked: map[string]int{}}
	a := newEngine(t, Config{Catalog: placeCatalog(), Name: "a", Placer: pl})
	var got []string
	res, err := a.ResolveHere(testContext(t), request.New("r_add", request.New("r_add", 1, 2), 3), []int{2}, func(s *Status) {
		got = append(got, s.Path+" "+s.State.String()+" @"+s.Node)
	})
	if err != nil || len(res) == 0 {
		t.Fatal(err)
	}
	if pl.asked["r_add"] != 1 || a.Calls("r_add") != 1 || b.Calls("r_add") != 1 {
		t.Errorf("asked %d, ran here %d, on b %d; want 1 1 1", pl.asked["r_add"], a.Calls("r_add"), b.Calls("r_add"))
	}
	j := strings.Join(got, "; ")
	for _, w := range []string{"args.tuple_element2 finished @a", "args.tuple_element2.args.tuple_element0 finished @b"} {
		if !strings.Contains(j, w) {
			t.Errorf("reports %q lack %q", j, w)
		}
	}
	if _, err := a.ResolveHere(testContext(t), request.New("add", 1, 2), []int{-1}, nil); status.CodeOf(err) != status.InvalidArgument {
		t.Errorf("negative path: %v", err)
	}
	deep := make([]int, 100)
	if _, err := a.ResolveHere(testContext(t), request.New("add", 1, 2), deep, nil); status.CodeOf(err) != status.InvalidArgument {
		t.Errorf("deep path: %v", err)
	}
}

// reportThenFail is a node that reports a subtree's grandchild placed on
// node x, then fails, as a member whose connection breaks does.
type reportThenFail struct{ name string }

func (p *reportThenFail) Name() string { return p.name }

func (p *reportThenFail) Resolve(ctx context.Context, n *request.Node, path []int, report func(*Status)) ([]byte, error) {
	if report != nil {
		report(&Status{Path: "args.tuple_element0.args.tuple_element0.args.tuple_element0", State: Created, Node: "x"})
	}
	return nil, fmt.Errorf("%s: connection lost: %w", p.name, ErrNodeFailed)
}

// A subtree moved off a failed node forgets where that node had placed
// its requests, even those that had not started: on the next node a
// cached child leaves them Skipped, on no node, not on the failed node's
// choice.
func TestMovedSubtreeForgetsPlacementsOfTheFailedNode(t *testing.T) {
	c := newEngine(t, Config{Catalog: placeCatalog(), Name: "c"})
	child := request.New("r_add+mem", request.New("add", 1, 2), 3)
	if got := resolveInt(t, c, child); got != 6 { // c has the child cached
		t.Fatalf("child on c: %d", got)
	}
	a := newEngine(t, Config{Catalog: placeCatalog(), Name: "a", Placer: placerFunc(func(ctx context.Context, n *request.Node, tried []string) (Place, error) {
		if n.ID != "r_add" {
			return nil, nil
		}
		if len(tried) == 0 {
			return &reportThenFail{name: "b"}, nil
		}
		return &enginePlace{name: "c", e: c}, nil
	})})
	id, err := a.Submit(testContext(t), request.New("add", request.New("r_add", child, 4), 5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Result(testContext(t), id); err != nil {
		t.Fatal(err)
	}
	st, _ := a.Status(id)
	g := st.Subrequests[0].Subrequests[0].Subrequests[0]
	if g.Path != "args.tuple_element0.args.tuple_element0.args.tuple_element0" || g.State != Skipped || g.Node != "" {
		t.Errorf("%s: %v on %q, want skipped on no node", g.Path, g.State, g.Node)
	}
	if sub := st.Subrequests[0]; sub.Node != "c" || len(sub.Tried) != 1 || sub.Tried[0] != "b" {
		t.Errorf("moved subtree on %q, tried %v", sub.Node, sub.Tried)
	}
}

type placerFunc func(ctx context.Context, n *request.Node, tried []string) (Place, error)

func (f placerFunc) Place(ctx context.Context, n *request.Node, tried []string) (Place, error) {
	return f(ctx, n, tried)
}
