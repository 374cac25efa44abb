// Package faultnet injects network faults between memberlist nodes: a
// wrapper around a memberlist transport that drops the packets and refuses
// the streams a Network says are cut. It is for tests; it does not model
// latency or loss rates, only reachability between groups of addresses.
package faultnet

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrCut is the error of a stream dial across a cut.
var ErrCut = errors.New("faultnet: network partitioned")

// Network knows which group each gossip address is in and whether the
// groups are cut off from each other. Addresses never assigned are never
// cut. Safe for concurrent use.
type Network struct {
	mu      sync.RWMutex
	group   map[string]int
	cut     bool
	dropped int
}

// New returns a Network with no groups and no cut.
func New() *Network { return &Network{group: make(map[string]int)} }

// Assign puts the node gossiping at addr (host:port) in group g.
func (n *Network) Assign(addr string, g int) {
	n.mu.Lock()
	n.group[addr] = g
	n.mu.Unlock()
}

// Partition cuts every group off from every other one.
func (n *Network) Partition() {
	n.mu.Lock()
	n.cut = true
	n.mu.Unlock()
}

// Heal reconnects the groups.
func (n *Network) Heal() {
	n.mu.Lock()
	n.cut = false
	n.mu.Unlock()
}

// Dropped returns how many packets and dials were refused so far.
func (n *Network) Dropped() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.dropped
}

// blocked reports whether traffic from one address to another is cut,
// counting it if so.
func (n *Network) blocked(from, to string) bool {
	n.mu.RLock()
	gf, okf := n.group[from]
	gt, okt := n.group[to]
	cut := n.cut && okf && okt && gf != gt
	n.mu.RUnlock()
	if cut {
		n.mu.Lock()
		n.dropped++
		n.mu.Unlock()
	}
	return cut
}

// Transport is a memberlist transport whose sends go through a Network.
// Faults are applied on the sending side only: when every node of a test
// is wrapped, that cuts both directions (an answer is a send too), and no
// incoming traffic needs to be attributed to a sender.
type Transport struct {
	memberlist.NodeAwareTransport
	net  *Network
	self string
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Wrap returns t sending through n as the node gossiping at self.
func (n *Network) Wrap(self string, t memberlist.NodeAwareTransport) *Transport {
	return &Transport{NodeAwareTransport: t, net: n, self: self}
}

// WriteTo drops the packet silently across a cut, as a lossy network does.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.net.blocked(t.self, addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteTo(b, addr)
}

// WriteToAddress is WriteTo for memberlist's named addresses.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.net.blocked(t.self, a.Addr) {
		return time.Now(), nil
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

// DialTimeout refuses streams across a cut.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.net.blocked(t.self, addr) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrCut}
	}
	return t.NodeAwareTransport.DialTimeout(addr, timeout)
}

// DialAddressTimeout is DialTimeout for memberlist's named addresses.
func (t *Transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.net.blocked(t.self, a.Addr) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ErrCut}
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}
