//go:build !noarbor

// Build with -tags noarbor to leave Arbor out (e.g. while the main module
// does not compile); every other system still runs.

package main

import (
	"context"
	"errors"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

func init() {
	register(system{
		name:  "arbor",
		note:  "Arbor over tcp://, arbor.Handle1 + arbor.Call1[[]byte], default options",
		start: startArbor,
	})
	register(system{
		name: "arbor-pool",
		note: "the same with arbor.WithoutInline(): every call handed to a worker, never run on the reader",
		start: func(ctx context.Context) (Runner, error) {
			return startArborAt(ctx, "tcp://127.0.0.1:0", nil, nil, nil, arbor.WithoutInline())
		},
	})
}

// arborRunner holds closures rather than Arbor's types so that it depends
// only on the documented calls, not on the concrete type names.
type arborRunner struct {
	call  func(ctx context.Context, payload []byte) ([]byte, error)
	close func() error
	dial  func(ctx context.Context) (Runner, error) // nil for a dialed connection
}

// Dial implements Dialer: another client of the same server.
func (r *arborRunner) Dial(ctx context.Context) (Runner, error) {
	if r.dial == nil {
		return nil, errors.New("arbor: not a server's runner")
	}
	return r.dial(ctx)
}

func startArbor(ctx context.Context) (Runner, error) {
	return startArborAt(ctx, "tcp://127.0.0.1:0", nil, nil, nil)
}

// startArborAt serves the unary echo on addr (listener configuration
// lcfg, server options opts) and dials it with dcfg; either config may be
// nil. cleanup, if not nil, runs after the runner has closed (or failed
// to start).
func startArborAt(ctx context.Context, addr string, lcfg, dcfg *transport.Config, cleanup func(), opts ...arbor.ServerOption) (r Runner, err error) {
	if cleanup != nil {
		defer func() {
			if err != nil {
				cleanup()
			}
		}()
	}
	srv := arbor.NewServer(append([]arbor.ServerOption{arbor.WithTransport(lcfg)}, opts...)...)
	arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	l, err := transport.Listen(ctx, addr, lcfg)
	if err != nil {
		return nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l) // returns after Close/Shutdown
	}()
	c, err := arbor.Dial(ctx, l.URL(), arbor.WithTransport(dcfg))
	if err != nil {
		srv.Close()
		<-served
		return nil, err
	}
	return &arborRunner{
		call: func(ctx context.Context, payload []byte) ([]byte, error) {
			return arbor.Call1[[]byte](ctx, c, "echo", payload)
		},
		dial: func(ctx context.Context) (Runner, error) { return dialArborWith(ctx, l.URL(), dcfg) },
		close: func() error {
			c.Close()
			srv.Close()
			<-served
			if cleanup != nil {
				cleanup()
			}
			return nil
		},
	}, nil
}

func (r *arborRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return r.call(ctx, payload)
}

func (r *arborRunner) Close() error { return r.close() }
