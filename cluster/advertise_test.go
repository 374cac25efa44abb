package cluster

import (
	"fmt"
	"net"
	"slices"
	"testing"
)

// A listener on every interface is advertised at the gossip's address:
// [::] or 0.0.0.0 would send another machine's clients to themselves.
// A second member sees the rewritten addresses.
func TestUnspecifiedListenersAdvertisedAtGossipAddr(t *testing.T) {
	cfg := testConfigNamed("star")
	cfg.RPCAddrs = []string{"tcp://[::]:7000", "tls://0.0.0.0:7001", "unix:/tmp/x.sock", "tcp://10.1.2.3:7002", "quic://:7003"}
	a := startNode(t, cfg)
	want := []string{"tcp://127.0.0.1:7000", "tls://127.0.0.1:7001", "unix:/tmp/x.sock", "tcp://10.1.2.3:7002", "quic://127.0.0.1:7003"}
	b := startNode(t, testConfigNamed("other", a.GossipAddr()))
	var seen []string
	waitFor(t, testTimeout, func() bool {
		for _, m := range b.Members(Filter{}) {
			if m.Name == "star" {
				seen = m.RPCAddrs
				return slices.Equal(m.RPCAddrs, want)
			}
		}
		return false
	}, func() string { return fmt.Sprintf("the other member sees star at %v, want %v", seen, want) })
}

func TestReachableAddrsKeepsWhatItCannotImprove(t *testing.T) {
	in := []string{"tcp://[::]:7000", "mem:x"}
	if got := reachableAddrs(in, net.IPv4zero); !slices.Equal(got, in) {
		t.Errorf("an unspecified gossip address changed %v to %v", in, got)
	}
	if got := reachableAddrs(in, net.ParseIP("fd00::1")); got[0] != "tcp://[fd00::1]:7000" || got[1] != "mem:x" {
		t.Errorf("IPv6 gossip address: %v", got)
	}
	if in[0] != "tcp://[::]:7000" {
		t.Error("reachableAddrs modified its input")
	}
}
