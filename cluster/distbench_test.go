package cluster

import (
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

// localTree is a 64-leaf tree of +none functions (nothing cached: every
// resolution runs all 127 requests).
func localTree() *request.Node {
	row := make([]*request.Node, 64)
	for i := range row {
		row[i] = request.New("own_leaf+none", i)
	}
	for len(row) > 1 {
		next := make([]*request.Node, 0, len(row)/2)
		for i := 0; i < len(row); i += 2 {
			next = append(next, request.New("own_pair+none", row[i], row[i+1]))
		}
		row = next
	}
	return row[0]
}

func registerOwn(tb testing.TB, srv *arbor.Server) {
	must(tb, arbor.Handle1(srv, "own_leaf+none", func(ctx context.Context, x int) (int, error) { return x, nil }))
	must(tb, arbor.Handle2(srv, "own_pair+none", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
}

// BenchmarkDistributedOverhead resolves a 64-leaf tree whose functions
// only the receiving member has: on a member of a 4-member cluster with
// distribution on ("cluster"), and on a single server that is in no
// cluster ("single"). Both servers live in the same process, beside the
// same running cluster, so that background work (gossip, heartbeats)
// weighs on both alike and the difference is the cost of asking where
// each request goes. The bar: cluster ≤ 1.1× single.
func BenchmarkDistributedOverhead(b *testing.B) {
	ws := startDistWorkers(b, 4, nil, nil, func(i int, w *distWorker) {
		if i == 0 {
			registerOwn(b, w.srv)
		}
	})
	srv := arbor.NewServer()
	registerOwn(b, srv)
	e, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 8 << 20})
	must(b, err)
	b.Cleanup(func() { e.Close() })
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	must(b, err)
	b.Cleanup(func() { srv.Close() })
	single, err := arbor.Dial(context.Background(), l.URL())
	must(b, err)
	b.Cleanup(func() { single.Close() })

	n := localTree()
	run := func(b *testing.B, c arbor.Caller) {
		ctx := context.Background()
		if v, err := tree.Resolve[int](ctx, c, n); err != nil || v != 63*64/2 {
			b.Fatalf("%d, %v", v, err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if _, err := tree.Resolve[int](ctx, c, n); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Warm both up (connections, caches of the catalogs, stacks) before
	// either is timed, so that the one measured first is not the one that
	// pays for the cluster settling.
	for range 200 {
		for _, c := range []arbor.Caller{single, ws[0].client} {
			if _, err := tree.Resolve[int](context.Background(), c, n); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("single", func(b *testing.B) { run(b, single) })
	b.Run("cluster", func(b *testing.B) {
		run(b, ws[0].client)
		if r := ws[0].engine.Stats().Remote; r != 0 {
			b.Fatalf("%d requests placed elsewhere", r)
		}
	})
}
