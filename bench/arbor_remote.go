//go:build !noarbor

package main

import (
	"context"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

// Arbor's echo split into a server (for a child process) and a client,
// for the procs and connscale sections; and Dial for one connection per
// caller.

func init() {
	registerRemote(remoteSystem{name: "arbor", serve: serveArbor, dial: dialArbor})
}

func serveArbor(ctx context.Context) (string, func(), error) {
	srv := arbor.NewServer()
	arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		return "", nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	return l.URL(), func() { srv.Close(); <-served }, nil
}

func dialArbor(ctx context.Context, url string) (Runner, error) {
	return dialArborWith(ctx, url, nil)
}

func dialArborWith(ctx context.Context, url string, dcfg *transport.Config) (Runner, error) {
	c, err := arbor.Dial(ctx, url, arbor.WithTransport(dcfg))
	if err != nil {
		return nil, err
	}
	return &arborRunner{
		call: func(ctx context.Context, payload []byte) ([]byte, error) {
			return arbor.Call1[[]byte](ctx, c, "echo", payload)
		},
		close: c.Close,
	}, nil
}
