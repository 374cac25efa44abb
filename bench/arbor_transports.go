//go:build !noarbor

package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/arbor-rpc/arbor/transport"
)

// Arbor's unary echo (the same runner as the arbor system) over each of its
// transports, for the transports section.

func init() {
	registerTransport(transportSystem{
		system: "arbor", transport: "tcp",
		note:  "plain TCP (the unary section's arbor)",
		start: startArbor,
	})
	registerTransport(transportSystem{
		system: "arbor", transport: "tls",
		note:  "TLS 1.3 over TCP, ECDSA P-256 server certificate, client verifies it against the throwaway CA",
		start: func(ctx context.Context) (Runner, error) { return startArborTLS(ctx, "tls") },
	})
	registerTransport(transportSystem{
		system: "arbor", transport: "quic",
		note:  "QUIC (quic-go) over UDP, same certificates; calls multiplexed with Arbor's framing on one long-lived QUIC stream",
		start: func(ctx context.Context) (Runner, error) { return startArborTLS(ctx, "quic") },
	})
	registerTransport(transportSystem{
		system: "arbor", transport: "unix",
		note:  "unix domain socket (reference: no TCP/IP stack)",
		start: startArborUnix,
	})
}

// startArborTLS serves on scheme://127.0.0.1:0 (tls or quic) with the
// throwaway server certificate; the client trusts only the throwaway CA.
func startArborTLS(ctx context.Context, scheme string) (Runner, error) {
	f, err := writeCerts()
	if err != nil {
		return nil, err
	}
	lcfg := &transport.Config{CertFile: f.certFile, KeyFile: f.keyFile} // no CAFile: it would demand client certificates
	dcfg := &transport.Config{CAFile: f.caFile, ServerName: "127.0.0.1"}
	return startArborAt(ctx, scheme+"://127.0.0.1:0", lcfg, dcfg, func() { os.RemoveAll(f.dir) })
}

func startArborUnix(ctx context.Context) (Runner, error) {
	dir, err := os.MkdirTemp("", "arbor-bench-")
	if err != nil {
		return nil, err
	}
	return startArborAt(ctx, "unix:"+filepath.Join(dir, "echo.sock"), nil, nil, func() { os.RemoveAll(dir) })
}
