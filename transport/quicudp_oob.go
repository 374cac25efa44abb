//go:build darwin || linux || freebsd

package transport

import (
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
)

// The methods quic-go's batching path (sys_conn_oob.go, v0.65.0) uses.
// Its own batch reader (x/net's ReadBatch, recvmmsg on the descriptor)
// would bypass the ICMP filter below and allocate each datagram's
// source address; ReadBatch here reads one datagram with recvmsg, without
// allocating, and filters as ReadFrom does. Writes get GSO's one sendmsg
// for many packets, which is what large payloads gain.

func (u connectedUDP) SyscallConn() (syscall.RawConn, error) { return u.c.SyscallConn() }

// ReadMsgUDP is what quic-go's interface asks for; ReadBatch is what it
// calls.
func (u connectedUDP) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	for {
		n, oobn, flags, _, err = u.c.ReadMsgUDPAddrPort(b, oob)
		if err != nil && u.icmp(err, false) {
			continue
		}
		return n, oobn, flags, u.raddr, err
	}
}

// ReadBatch reads one datagram into ms[0].
func (u connectedUDP) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	if len(ms) == 0 || len(ms[0].Buffers) == 0 {
		return 0, nil
	}
	m := &ms[0]
	n, oobn, flags, _, err := u.ReadMsgUDP(m.Buffers[0], m.OOB)
	if err != nil {
		return 0, err
	}
	m.N, m.NN, m.Flags, m.Addr = n, oobn, flags, u.raddr
	return 1, nil
}

// WriteMsgUDP sends to the connected peer, whatever addr says (it is
// that peer's: quic-go dialed it).
func (u connectedUDP) WriteMsgUDP(b, oob []byte, _ *net.UDPAddr) (n, oobn int, err error) {
	n, oobn, err = u.c.WriteMsgUDP(b, oob, nil)
	if err != nil && u.icmp(err, true) {
		return len(b), len(oob), nil // not sent: lost, as on any path
	}
	return n, oobn, err
}

// listenerUDP is a listener's socket whose writes allocate nothing:
// *net.UDPConn's WriteMsgUDP, which quic-go calls per packet (or GSO
// batch), builds a sockaddr on the heap from addr each time;
// WriteMsgUDPAddrPort takes it by value. Reads stay quic-go's (x/net's
// recvmmsg: a listener's many peers gain from batches).
type listenerUDP struct{ *net.UDPConn }

func (u listenerUDP) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if addr == nil {
		return u.UDPConn.WriteMsgUDP(b, oob, nil)
	}
	return u.UDPConn.WriteMsgUDPAddrPort(b, oob, addr.AddrPort())
}

// quicListenerConn is what a listener hands quic-go for pc.
func quicListenerConn(pc net.PacketConn) net.PacketConn {
	if c, ok := pc.(*net.UDPConn); ok {
		return listenerUDP{c}
	}
	return pc
}
