package tree_test

import (
	"context"
	"fmt"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/tree"
)

// A server that resolves request trees, and a client that sends one in a
// single call. "+mem" caches the sum: the second call does not run it.
func ExampleEnable() {
	ctx := context.Background()
	cfg := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer(arbor.WithTransport(cfg))
	arbor.Handle2(srv, "add+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	engine, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer engine.Close()
	l, err := transport.Listen(ctx, "mem:trees", cfg)
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()

	c, err := arbor.Dial(ctx, "mem:trees", arbor.WithTransport(cfg))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	tr := request.New("add+mem", request.New("add+mem", 1, 2), 3)
	for range 2 {
		sum, err := tree.Resolve[int](ctx, c, tr)
		fmt.Println(sum, err)
	}
	fmt.Println("runs:", engine.Calls("add+mem"))

	_, err = tree.Resolve[int](ctx, c, request.New("add+mem", 1, request.New("nope")))
	fmt.Println(err)
	// Output:
	// 6 <nil>
	// 6 <nil>
	// runs: 2
	// NotFound: args.tuple_element1 (nope): unknown function "nope"
}
