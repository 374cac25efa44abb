package demo_test

import (
	"context"
	"fmt"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/demo"
	"github.com/arbor-rpc/arbor/transport"
)

func ExampleRegister() {
	ctx := context.Background()
	mem := transport.NewMemNetwork()
	cfg := &transport.Config{Mem: mem}

	srv := arbor.NewServer()
	if err := demo.Register(srv); err != nil {
		panic(err)
	}
	l, err := transport.Listen(ctx, "mem:example", cfg)
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() { srv.Close(); <-done }()

	c, err := arbor.Dial(ctx, "mem:example", arbor.WithTransport(cfg))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	sum, err := arbor.Call2[int](ctx, c, "add", 2, 3)
	fmt.Println(sum, err)
	_, err = arbor.Call1[struct{}](ctx, c, "fail", "boom")
	fmt.Println(err)
	// Output:
	// 5 <nil>
	// Internal: boom
}
