package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

// distWorker is a member resolving request trees with distribution on.
type distWorker struct {
	name    string
	srv     *arbor.Server
	node    *Node
	engine  *resolve.Engine
	dist    *Distributor
	url     string
	client  *arbor.Client
	leaves  atomic.Int64 // runs of leaf+mem here
	cancels atomic.Int64 // slow+mem runs that saw their context end
	started chan string  // names of slow+mem runs as they start
	doomed  atomic.Bool  // doom+mem closes this member's server (see withDoom)
	treeCfg tree.Config  // what tree.Enable gets; setup functions may change it
	// advertise, when a setup function sets it, turns the member's RPC
	// URL into the address it gives the cluster (a proxy's).
	advertise func(url string) string
}

// startDistWorkers starts size members d0, d1, ...: every one serves
// leaf+mem (counts its runs), pair+mem, slow+mem (sleeps, sees
// cancellation) and cheap (Local); those with gpu(i) also serve
// gpu_render+mem and are tagged gpu=true.
// setup, if any, registers more functions on member i before
// resolution is enabled.
func startDistWorkers(t testing.TB, size int, gpu func(i int) bool, require map[string]string, setup ...func(i int, w *distWorker)) []*distWorker {
	t.Helper()
	ws := make([]*distWorker, size)
	for i := range ws {
		w := &distWorker{name: fmt.Sprintf("d%d", i), srv: arbor.NewServer(), started: make(chan string, 64)}
		ws[i] = w
		must(t, arbor.Handle1(w.srv, "leaf+mem", func(ctx context.Context, x int) (int, error) { w.leaves.Add(1); return x, nil }))
		must(t, arbor.Handle2(w.srv, "pair+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
		must(t, arbor.Handle1(w.srv, "cheap", func(ctx context.Context, x int) (int, error) { return x + 1, nil }, arbor.Local()))
		must(t, arbor.Handle1(w.srv, "slow+mem", func(ctx context.Context, ms int) (string, error) {
			w.started <- w.name
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return w.name, nil
			case <-ctx.Done():
				w.cancels.Add(1)
				return "", ctx.Err()
			}
		}))
		tags := map[string]string{}
		if gpu != nil && gpu(i) {
			tags["gpu"] = "true"
			must(t, arbor.Handle1(w.srv, "gpu_render+mem", func(ctx context.Context, x int) (string, error) { return w.name, nil }))
		}
		w.treeCfg = tree.Config{MemoryCacheBytes: 8 << 20}
		for _, f := range setup {
			f(i, w)
		}
		var err error
		w.engine, err = tree.Enable(w.srv, w.treeCfg)
		must(t, err)
		l, err := w.srv.Listen(context.Background(), "tcp://127.0.0.1:0")
		must(t, err)
		w.url = l.URL()
		var seeds []string
		if i > 0 {
			seeds = []string{ws[0].node.GossipAddr()}
		}
		cfg := testConfigNamed(w.name, seeds...)
		cfg.RPCAddrs = []string{w.url}
		if w.advertise != nil {
			cfg.RPCAddrs = []string{w.advertise(w.url)}
		}
		cfg.Tags = tags
		w.node, err = Join(testContext(t), w.srv, cfg)
		must(t, err)
		t.Cleanup(func() { w.srv.Close(); w.node.Close(); w.engine.Close() })
	}
	nodes := make([]*Node, size)
	for i, w := range ws {
		nodes[i] = w.node
	}
	waitConverged(t, nodes, size)
	for _, w := range ws {
		var err error
		w.dist, err = Distribute(testContext(t), w.node, w.srv, w.engine, DistributeConfig{Require: require})
		must(t, err)
		t.Cleanup(func() { w.dist.Close() })
		w.client, err = arbor.Dial(testContext(t), w.url)
		must(t, err)
		t.Cleanup(func() { w.client.Close() })
	}
	// Every member knows every other's catalog.
	eventually(t, func() bool {
		for _, w := range ws {
			v := w.dist.view.Load()
			if len(v.members) != size || v.incomplete {
				return false
			}
		}
		return true
	}, "every distributor to know every catalog")
	return ws
}

// leafTree is a balanced tree of pair+mem over leaf+mem(base+i) leaves.
func leafTree(leaves, base int) *request.Node {
	level := make([]*request.Node, leaves)
	for i := range level {
		level[i] = request.New("leaf+mem", base+i)
	}
	for len(level) > 1 {
		next := make([]*request.Node, 0, len(level)/2)
		for i := 0; i < len(level); i += 2 {
			next = append(next, request.New("pair+mem", level[i], level[i+1]))
		}
		level = next
	}
	return level[0]
}

func totalLeaves(ws []*distWorker) int64 {
	var n int64
	for _, w := range ws {
		n += w.leaves.Load()
	}
	return n
}

// A 64-leaf tree spreads over the members (its status tree says where
// each request ran), the same tree at another member runs nothing, and
// identical trees submitted concurrently at every member run each leaf
// once in all.
func TestDistributedTreeSpreadsAndRunsOnce(t *testing.T) {
	ws := startDistWorkers(t, 4, nil, nil)
	ctx := testContext(t)
	n := leafTree(64, 0)
	id, err := tree.Submit(ctx, ws[0].client, n)
	must(t, err)
	sum, err := tree.Result[int](ctx, ws[0].client, id)
	if err != nil || sum != 63*64/2 {
		t.Fatalf("sum = %d, %v", sum, err)
	}
	st, err := tree.Status(ctx, ws[0].client, id)
	must(t, err)
	where := map[string]int{}
	st.Walk(func(s *resolve.Status, _ int) {
		if s.UUID == "leaf+mem" {
			where[s.Node]++
		}
		if s.State != resolve.Finished || s.Node == "" {
			t.Errorf("%s: %v on %q", s.Path, s.State, s.Node)
		}
	})
	if len(where) < 3 {
		t.Errorf("leaves ran on %v: fewer than 3 members", where)
	}
	if got := totalLeaves(ws); got != 64 {
		t.Errorf("%d leaf runs, want 64", got)
	}
	// Again, at another member: nothing runs.
	if sum, err := tree.Resolve[int](ctx, ws[2].client, n); err != nil || sum != 63*64/2 {
		t.Fatalf("again: %d, %v", sum, err)
	}
	if got := totalLeaves(ws); got != 64 {
		t.Errorf("resolving again at d2 ran %d leaves", got-64)
	}
	// The same counts from outside: resolve_catalog summed over members.
	var viaCatalog int64
	for _, w := range ws {
		fs, err := tree.Catalog(ctx, w.client)
		must(t, err)
		for _, f := range fs {
			if f.ID == "leaf+mem" {
				viaCatalog += f.Calls
			}
			if f.ID == "cheap" && !f.Local {
				t.Errorf("cheap is not marked local in the catalog")
			}
		}
	}
	if viaCatalog != 64 {
		t.Errorf("resolve_catalog counts %d leaf runs", viaCatalog)
	}

	// 20 callers, the same new tree, at 4 members at once.
	n2 := leafTree(64, 1000)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tree.Resolve[int](ctx, ws[i%4].client, n2); err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if got := totalLeaves(ws) - 64; got != 64 {
		t.Errorf("20 concurrent identical trees ran %d leaves, want 64", got)
	}
}

// A function only gpu members have runs there, whatever member got the
// tree; one with a tag requirement nobody meets is NotFound naming it and
// its tags; cheap (Local) functions stay where the tree is.
func TestDistributedCapabilityAndLocal(t *testing.T) {
	ws := startDistWorkers(t, 3, func(i int) bool { return i == 2 }, map[string]string{"leaf+mem": "zone=mars"})
	ctx := testContext(t)
	for i := range 4 {
		name, err := tree.Resolve[string](ctx, ws[0].client, request.New("gpu_render+mem", i))
		if err != nil || name != "d2" {
			t.Fatalf("gpu_render at d0 ran on %q, %v", name, err)
		}
	}
	_, err := tree.Resolve[int](ctx, ws[1].client, request.New("pair+mem", request.New("leaf+mem", 1), 2))
	if !errArborCode(err, arbor.NotFound) || !strings.Contains(err.Error(), `args.tuple_element0 (leaf+mem): no live member has function "leaf+mem" with tags zone=mars`) {
		t.Errorf("leaf+mem needing zone=mars: %v", err)
	}
	_, err = tree.Resolve[int](ctx, ws[1].client, request.New("pair+mem", request.New("nosuch", 1), 2))
	if !errArborCode(err, arbor.NotFound) || !strings.Contains(err.Error(), `no live member has function "nosuch"`) {
		t.Errorf("nosuch: %v", err)
	}
	before := ws[0].engine.Stats().Remote
	for i := range 8 {
		id, err := tree.Submit(ctx, ws[0].client, request.New("cheap", i))
		must(t, err)
		if _, err := tree.Result[int](ctx, ws[0].client, id); err != nil {
			t.Fatal(err)
		}
		st, _ := tree.Status(ctx, ws[0].client, id)
		if st.Node != "d0" {
			t.Errorf("cheap ran on %q, not where the tree was", st.Node)
		}
	}
	if ws[0].engine.Stats().Remote != before {
		t.Errorf("Local function placed elsewhere")
	}
}

func errArborCode(err error, c arbor.Code) bool {
	e, ok := err.(*arbor.Error)
	return ok && e.Code == c
}

// Cancelling a tree cancels its remote subtree on the member running it.
func TestDistributedCancelReachesRemoteMember(t *testing.T) {
	ws := startDistWorkers(t, 3, nil, nil)
	ctx := testContext(t)
	// A slow subtree under a root of this member: find one placed away.
	var id string
	var runner *distWorker
	for k := 0; k < 16 && runner == nil; k++ {
		n := request.New("pair+mem", request.New("leaf+mem", 1), request.New("leaf+mem", request.New("slow+mem", 10000+k)))
		key := n.Args[1].Node.Args[0].Node.Key()
		owner := Rendezvous{}.Pick([]Candidate{{Name: "d0"}, {Name: "d1"}, {Name: "d2"}}, string(key[:]))
		if owner == 0 {
			continue
		}
		runner = ws[owner]
		var err error
		id, err = tree.Submit(ctx, ws[0].client, n)
		must(t, err)
	}
	if runner == nil {
		t.Fatal("no slow subtree owned elsewhere")
	}
	select {
	case name := <-runner.started:
		if name != runner.name {
			t.Fatalf("slow ran on %s", name)
		}
	case <-ctx.Done():
		t.Fatal("slow+mem never started")
	}
	must(t, tree.Cancel(ctx, ws[0].client, id, ""))
	eventually(t, func() bool { return runner.cancels.Load() == 1 }, "the remote slow+mem to see its context cancelled")
	if _, err := tree.Result[int](ctx, ws[0].client, id); !errArborCode(err, arbor.Canceled) {
		t.Errorf("cancelled tree: %v", err)
	}
}

// A peer sending a malformed subtree gets InvalidArgument, and the member
// keeps serving.
func TestDistributedMalformedSubtree(t *testing.T) {
	ws := startDistWorkers(t, 2, nil, nil)
	ctx := testContext(t)
	for _, in := range []ResolveArgs{
		{Tree: []byte{0x93, 0xa1}},
		{Tree: []byte("not msgpack at all")},
		{Tree: append(mustMsgpack(t, request.New("leaf+mem", 1)), 0xc0)},
		{Tree: mustMsgpack(t, request.New("leaf+mem", 1)), Path: []int{-3}},
		{Tree: mustMsgpack(t, request.New("leaf+mem", 1)), Path: make([]int, 1000)},
	} {
		s, err := arbor.CallServerStream[ResolveMessage](ctx, ws[1].client, ResolveID, in)
		if err == nil {
			var m ResolveMessage
			m, err = s.Recv()
			if err == nil && m.Error != nil {
				err = &arbor.Error{Code: arbor.Code(m.Error.Code), Message: m.Error.Message}
			}
			s.Close()
		}
		if !errArborCode(err, arbor.InvalidArgument) {
			t.Errorf("malformed %x: %v, want InvalidArgument", in.Tree, err)
		}
	}
	if v, err := tree.Resolve[int](ctx, ws[1].client, request.New("leaf+mem", 7)); err != nil || v != 7 {
		t.Fatalf("after malformed input: %d, %v", v, err)
	}
}

func mustMsgpack(t *testing.T, n *request.Node) []byte {
	b, err := request.AppendMsgpack(nil, n)
	must(t, err)
	return b
}
