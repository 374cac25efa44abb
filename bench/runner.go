package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Runner is one RPC system under test: a server listening on loopback TCP
// and ONE client connection to it, shared by every concurrent caller.
type Runner interface {
	// Call does one unary echo round trip and returns the echoed payload.
	// It must be safe for concurrent use. The returned slice must not alias
	// payload (it is what came back over the wire).
	Call(ctx context.Context, payload []byte) ([]byte, error)
	// Close closes the client connection and stops the server.
	Close() error
}

// system describes how to start one Runner.
type system struct {
	name  string
	note  string // shown under the tables (e.g. "one call at a time per conn")
	start func(ctx context.Context) (Runner, error)
}

var registry = map[string]system{}

// register is called from each runner file's init, so a runner file can be
// left out of the build (see the noarbor build tag) without touching others.
func register(s system) {
	if _, dup := registry[s.name]; dup {
		panic("bench: duplicate system " + s.name)
	}
	registry[s.name] = s
}

// defaultOrder is the order systems are run and printed in.
var defaultOrder = []string{"floor", "arbor", "arbor-pool", "grpc", "connect", "rpcx", "kitex", "drpc", "netrpc", "capnp"}

// knownSystems lists registered system names, defaultOrder first.
func knownSystems() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range defaultOrder {
		if _, ok := registry[n]; ok {
			out = append(out, n)
			seen[n] = true
		}
	}
	var rest []string
	for n := range registry {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// lookupSystems resolves a comma-separated list ("all" or "" = every
// registered system).
func lookupSystems(list string) ([]system, error) {
	list = strings.TrimSpace(list)
	if list == "" || list == "all" {
		var out []system
		for _, n := range knownSystems() {
			out = append(out, registry[n])
		}
		return out, nil
	}
	var out []system
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		s, ok := registry[n]
		if !ok {
			hint := ""
			if n == "arbor" {
				hint = " (built with -tags noarbor?)"
			}
			return nil, fmt.Errorf("unknown system %q%s; known: %s", n, hint, strings.Join(knownSystems(), ","))
		}
		out = append(out, s)
	}
	return out, nil
}

// Dialer is implemented by Runners that can open further client
// connections to their server: for cells with one connection per caller,
// and for the connection-scale section. The Runner it returns uses only
// its own connection, and its Close closes only that connection.
type Dialer interface {
	Dial(ctx context.Context) (Runner, error)
}
