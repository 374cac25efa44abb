// Package arbortest is the in-memory server and client pair for tests of
// code that uses Arbor: one call makes a server, listens on a mem:
// address (an in-process, buffered pipe scoped to the pair, so parallel
// tests do not see each other) and dials it; t.Cleanup closes both.
//
//	p := arbortest.New(t)
//	arbor.Handle2(p.Server, "add", add)
//	sum, err := arbor.Call2[int](ctx, p.Client, "add", 2, 3)
//
// It is not a mock: the calls go through the real connection, wire and
// handlers, only the socket is a pipe.
package arbortest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

// Pair is a server and a client connected to it.
type Pair struct {
	Server *arbor.Server
	Client *arbor.Client
	// URL is the mem: address the server listens on; Dial makes more
	// clients for it.
	URL string
	net *transport.MemNetwork
}

var seq atomic.Int64 // distinct names, for messages only: each pair has its own network

// New starts a server with opts on a mem: address and connects a client
// to it. Both are closed when the test ends (the server first, with a
// short drain).
func New(tb testing.TB, opts ...arbor.ServerOption) *Pair {
	tb.Helper()
	p := &Pair{net: transport.NewMemNetwork()}
	tr := &transport.Config{Mem: p.net}
	p.Server = arbor.NewServer(append([]arbor.ServerOption{arbor.WithTransport(tr)}, opts...)...)
	ctx := context.Background()
	l, err := p.Server.Listen(ctx, fmt.Sprintf("mem:arbortest-%d", seq.Add(1)))
	if err != nil {
		tb.Fatalf("arbortest: listen: %v", err)
	}
	p.URL = l.URL()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p.Server.Shutdown(ctx)
	})
	p.Client = p.Dial(tb)
	return p
}

// Dial connects another client to the pair's server, closed when the
// test ends.
func (p *Pair) Dial(tb testing.TB, opts ...arbor.ClientOption) *arbor.Client {
	tb.Helper()
	c, err := arbor.Dial(context.Background(), p.URL, append([]arbor.ClientOption{arbor.WithTransport(&transport.Config{Mem: p.net})}, opts...)...)
	if err != nil {
		tb.Fatalf("arbortest: dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
