//go:build !noarbor

package main

import (
	"context"
	"os"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

// Arbor over tls:// and quic:// split into a server (for a child process)
// and a client, for the procs section: the transports section's cells
// with each side on its own core. The child writes the throwaway
// certificates to a temporary directory and reports its address with the
// CA file (withCA), so that the client trusts that CA alone.

func init() {
	for _, scheme := range []string{"tls", "quic"} {
		registerRemote(remoteSystem{
			name:  "arbor-" + scheme,
			serve: func(ctx context.Context) (string, func(), error) { return serveArborSecure(ctx, scheme) },
			dial:  dialArborSecure,
		})
	}
}

func serveArborSecure(ctx context.Context, scheme string) (string, func(), error) {
	f, err := writeCerts()
	if err != nil {
		return "", nil, err
	}
	cfg := &transport.Config{CertFile: f.certFile, KeyFile: f.keyFile}
	srv := arbor.NewServer(arbor.WithTransport(cfg))
	arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	l, err := transport.Listen(ctx, scheme+"://127.0.0.1:0", cfg)
	if err != nil {
		os.RemoveAll(f.dir)
		return "", nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l)
	}()
	return withCA(l.URL(), f.caFile), func() { srv.Close(); <-served; os.RemoveAll(f.dir) }, nil
}

// dialArborSecure dials the address serveArborSecure reports.
func dialArborSecure(ctx context.Context, addr string) (Runner, error) {
	url, ca, err := splitCA(addr)
	if err != nil {
		return nil, err
	}
	return dialArborWith(ctx, url, &transport.Config{CAFile: ca, ServerName: "127.0.0.1"})
}
