//go:build !noarbor

package main

import (
	"context"
	"time"

	"github.com/arbor-rpc/arbor"
)

// The pipeline section's Arbor runner: arbor.NewServer with "add"
// (arbor.Handle2) on tcp://127.0.0.1:0, a linkProxy in front of it, and one
// client dialed to the proxy with keep-alive off. The chain goes out as
// promises, each call taking the previous one's promise as its first
// argument, and only the last is waited for.

func init() {
	registerPipeline(pipelineSystem{
		name:  "arbor",
		chain: "promises: arbor.Go2 each taking the previous promise, Wait on the last",
		note:  `arbor.Handle2(srv, "add", ...) on tcp://127.0.0.1:0; client arbor.Dial("tcp://"+proxy, arbor.WithKeepAlive(-1, 0)); one call arbor.Call2[int]; the chain arbor.Go2[int](ctx, c, "add", p, 1) on the previous promise p, then p.Wait()`,
		start: startArborPipeline,
	})
}

type arborPipeline struct {
	srv   *arbor.Server
	proxy *linkProxy
	c     *arbor.Client
}

func startArborPipeline(ctx context.Context, linkDelay time.Duration) (PipelineRunner, error) {
	srv := arbor.NewServer()
	if err := arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }); err != nil {
		return nil, err
	}
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	proxy, err := startLinkProxy(l.Addr().String(), linkDelay)
	if err != nil {
		srv.Close()
		return nil, err
	}
	c, err := arbor.Dial(ctx, "tcp://"+proxy.Addr(), arbor.WithKeepAlive(-1, 0))
	if err != nil {
		proxy.Close()
		srv.Close()
		return nil, err
	}
	return &arborPipeline{srv: srv, proxy: proxy, c: c}, nil
}

func (a *arborPipeline) One(ctx context.Context) (int, error) {
	return arbor.Call2[int](ctx, a.c, "add", 1, 1)
}

func (a *arborPipeline) Chain(ctx context.Context, n int) (int, error) {
	p := arbor.Go2[int](ctx, a.c, "add", 0, 1)
	for i := 1; i < n; i++ {
		p = arbor.Go2[int](ctx, a.c, "add", p, 1)
	}
	return p.Wait()
}

func (a *arborPipeline) Close() error {
	err := a.c.Close()
	a.proxy.Close()
	a.srv.Close()
	return err
}
