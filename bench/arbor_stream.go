//go:build !noarbor

package main

import (
	"context"
	"io"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

// Arbor's bidirectional echo: arbor.HandleBidiStream on the server,
// arbor.OpenBidiStream on ONE client connection over tcp://, default
// options.

func init() {
	registerStream(streamSystem{
		name:  "arbor",
		note:  "Arbor over tcp://, arbor.HandleBidiStream + arbor.OpenBidiStream[[]byte, []byte], default options (256 KiB stream / 1 MiB connection windows)",
		start: startArborStream,
	})
}

type arborStreamRunner struct {
	open  func(ctx context.Context) (Lane, error)
	close func() error
}

func startArborStream(ctx context.Context) (StreamRunner, error) {
	srv := arbor.NewServer()
	err := arbor.HandleBidiStream[[]byte, []byte](srv, "echo", func(ctx context.Context, in *arbor.Receiver[[]byte], out *arbor.Sender[[]byte]) error {
		for {
			m, err := in.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := out.Send(m); err != nil {
				return err
			}
		}
	})
	if err != nil {
		return nil, err
	}
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		return nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l) // returns after Close/Shutdown
	}()
	c, err := arbor.Dial(ctx, l.URL())
	if err != nil {
		srv.Close()
		<-served
		return nil, err
	}
	return &arborStreamRunner{
		open: func(ctx context.Context) (Lane, error) {
			s, err := arbor.OpenBidiStream[[]byte, []byte](ctx, c, "echo")
			if err != nil {
				return nil, err
			}
			return s, nil // *arbor.BidiStream has Send, Recv and CloseSend
		},
		close: func() error {
			c.Close()
			srv.Close()
			<-served
			return nil
		},
	}, nil
}

func (r *arborStreamRunner) Open(ctx context.Context) (Lane, error) { return r.open(ctx) }

func (r *arborStreamRunner) Close() error { return r.close() }
