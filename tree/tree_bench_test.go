package tree_test

import (
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

// benchTree7 is a 3-level tree of 7 nodes; every node is cached.
func benchTree7() *request.Node {
	leaf := func(a, b int) *request.Node { return request.New("math_add+mem", a, b) }
	return request.New("math_add+mem",
		request.New("math_add+mem", leaf(1, 2), leaf(3, 4)),
		request.New("math_add+mem", leaf(5, 6), leaf(7, 8)))
}

// BenchmarkTreeVsUnary compares, over TCP loopback, a plain unary call
// (add) with resolving a 7-node tree whose root is in the memory cache.
// Target: tree ≤ 1.3 × unary. The seq cases run one call at a time
// (latency); the par cases run 32 goroutines per CPU on one client.
func BenchmarkTreeVsUnary(b *testing.B) {
	ts := startTreeServer(b, treeServerOpts{})
	ctx := context.Background()
	tr := benchTree7()
	if got, err := tree.Resolve[int](ctx, ts.c, tr); err != nil || got != 36 {
		b.Fatalf("warm-up: %d, %v", got, err)
	}
	unary := func() error {
		_, err := arbor.Call2[int](ctx, ts.c, "add", 1, 2)
		return err
	}
	resolveTree := func() error {
		_, err := tree.Resolve[int](ctx, ts.c, tr)
		return err
	}
	for _, bc := range []struct {
		name string
		call func() error
	}{{"unary", unary}, {"tree7-cached", resolveTree}} {
		b.Run("seq/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("par/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := bc.call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
