//go:build !noarbor

package main

import (
	"context"
	"fmt"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/tree"
)

// The tree section's runner: one Arbor server with the same add function
// registered as "math_add+none" and "math_add+mem" (arbor.Handle2) and
// request-tree resolution enabled (tree.Enable, default
// ResolveConfig), served on tcp://127.0.0.1:0, and one client connection.

func init() { startTree = startArborTree }

func treeAdd(_ context.Context, a, b int) (int, error) { return a + b, nil }

// tree7 is the 3-level tree of 7 nodes over function fn, as in the main
// module's BenchmarkTreeVsUnary:
//
//	fn(fn(fn(1,2), fn(3,4)), fn(fn(5,6), fn(7,8))) = 36
func tree7(fn string) *request.Node {
	leaf := func(a, b int) *request.Node { return request.New(fn, a, b) }
	return request.New(fn,
		request.New(fn, leaf(1, 2), leaf(3, 4)),
		request.New(fn, leaf(5, 6), leaf(7, 8)))
}

type arborTree struct {
	srv    *arbor.Server
	engine *resolve.Engine
	c      *arbor.Client
	served chan struct{}

	cached, uncached *request.Node // built once, shared (read-only) by all callers
}

func startArborTree(ctx context.Context) (TreeRunner, error) {
	srv := arbor.NewServer()
	for _, id := range []string{treeFnNone, treeFnMem} {
		if err := arbor.Handle2(srv, id, treeAdd); err != nil {
			return nil, err
		}
	}
	e, err := tree.Enable(srv, tree.Config{})
	if err != nil {
		return nil, err
	}
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		e.Close()
		return nil, err
	}
	t := &arborTree{srv: srv, engine: e, served: make(chan struct{}), cached: tree7(treeFnMem), uncached: tree7(treeFnNone)}
	go func() {
		defer close(t.served)
		srv.Serve(l) // returns after Close/Shutdown
	}()
	t.c, err = arbor.Dial(ctx, l.URL())
	if err != nil {
		srv.Close()
		<-t.served
		e.Close()
		return nil, err
	}
	return t, nil
}

func (t *arborTree) Op(variant string) func(ctx context.Context) error {
	switch variant {
	case treeUnary:
		return func(ctx context.Context) error {
			got, err := arbor.Call2[int](ctx, t.c, treeFnNone, 1, 2)
			return checkSum(variant, got, unarySum, err)
		}
	case treeCached:
		return func(ctx context.Context) error {
			got, err := tree.Resolve[int](ctx, t.c, t.cached)
			return checkSum(variant, got, treeSum, err)
		}
	case treeUncached:
		return func(ctx context.Context) error {
			got, err := tree.Resolve[int](ctx, t.c, t.uncached)
			return checkSum(variant, got, treeSum, err)
		}
	}
	return nil
}

func checkSum(variant string, got, want int, err error) error {
	if err != nil {
		return fmt.Errorf("%s: call: %w", variant, err)
	}
	if got != want {
		return fmt.Errorf("%s: wrong sum: got %d, want %d", variant, got, want)
	}
	return nil
}

func (t *arborTree) Note(variant string) string {
	switch variant {
	case treeUnary:
		return fmt.Sprintf("arbor.Call2[int](ctx, c, %q, 1, 2), the add function called directly (no resolution)", treeFnNone)
	case treeCached:
		return fmt.Sprintf("tree.Resolve[int] of a 3-level tree of 7 %q nodes (= %d), warmed first: its root is in the memory cache", treeFnMem, treeSum)
	case treeUncached:
		return fmt.Sprintf("the same tree of %q nodes (reference): all 7 run on every call", treeFnNone)
	}
	return ""
}

func (t *arborTree) Runs(id string) int64 { return t.engine.Calls(id) }

func (t *arborTree) Close() error {
	t.c.Close()
	t.srv.Close()
	<-t.served
	return t.engine.Close()
}
