package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The transports section: the unary echo over each transport a system
// offers, measured with the same harness (measure) as the unary section.

// transportSystem is one system over one transport, e.g. arbor over quic.
type transportSystem struct {
	system    string // "arbor", "grpc"
	transport string // "tcp", "tls", "quic", "unix"
	note      string
	start     func(ctx context.Context) (Runner, error)
}

// name is how -transports selects it: "arbor-tls".
func (t transportSystem) name() string { return t.system + "-" + t.transport }

var transportRegistry = map[string]transportSystem{}

func registerTransport(t transportSystem) {
	if _, dup := transportRegistry[t.name()]; dup {
		panic("bench: duplicate transport system " + t.name())
	}
	transportRegistry[t.name()] = t
}

// transportOrder is the order transport systems are run and printed in.
var transportOrder = []string{"arbor-tcp", "arbor-tls", "arbor-quic", "arbor-unix", "grpc-tcp", "grpc-tls", "floor-tcp", "floor-udp"}

func knownTransports() []string {
	var out []string
	for _, n := range transportOrder {
		if _, ok := transportRegistry[n]; ok {
			out = append(out, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(transportRegistry)) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// lookupTransports resolves a comma-separated list ("all" or "" = every
// registered transport system). A bare transport ("tls") means every
// system over it; a bare system ("arbor") every transport of it. The
// result is in the usual order (transportOrder).
func lookupTransports(list string) ([]transportSystem, error) {
	list = strings.TrimSpace(list)
	if list == "" || list == "all" {
		var out []transportSystem
		for _, n := range knownTransports() {
			out = append(out, transportRegistry[n])
		}
		return out, nil
	}
	selected := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		matched := false
		for _, n := range knownTransports() {
			t := transportRegistry[n]
			if f == n || f == t.system || f == t.transport {
				matched, selected[n] = true, true
			}
		}
		if !matched {
			hint := ""
			if strings.HasPrefix(f, "arbor") {
				hint = " (built with -tags noarbor?)"
			}
			return nil, fmt.Errorf("unknown transport system %q%s; known: %s", f, hint, strings.Join(knownTransports(), ","))
		}
	}
	var out []transportSystem // in the usual order, whatever the list's
	for _, n := range knownTransports() {
		if selected[n] {
			out = append(out, transportRegistry[n])
		}
	}
	return out, nil
}
