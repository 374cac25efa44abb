package cluster

import (
	"net"
	"slices"

	"github.com/arbor-rpc/arbor/transport"
)

// reachableAddrs returns the RPC addresses as other members are to dial
// them: a listener on every interface (tcp://[::]:7450, what
// tcp://*:7450 reports) would send another machine's clients to
// themselves, so its host becomes ip, the address this node's gossip
// advertises (when that is a specific one). Other addresses are kept.
func reachableAddrs(addrs []string, ip net.IP) []string {
	if ip == nil || ip.IsUnspecified() {
		return addrs
	}
	out := slices.Clone(addrs)
	for i, u := range addrs {
		a, err := transport.ParseAddr(u)
		if err != nil || a.Host == "" {
			continue
		}
		h, port, err := net.SplitHostPort(a.Host)
		if err != nil {
			continue
		}
		if hip := net.ParseIP(h); h == "" || hip != nil && hip.IsUnspecified() {
			a.Host = net.JoinHostPort(ip.String(), port)
			out[i] = a.String()
		}
	}
	return out
}
