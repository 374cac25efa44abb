package transport

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// connectedUDP adapts a dialer's connected UDP socket to the PacketConn
// quic-go wants: writes go to the one peer, reads come from it. Where
// quic-go batches (Linux, macOS, FreeBSD), it is also the
// OOBCapablePacketConn and batch reader quic-go looks for
// (quicudp_oob.go), so the dialer gets GSO, path MTU discovery and ECN
// as the listener does; its WriteMsgUDP sends without an address, which
// a connected socket would refuse.
//
// A connected socket reports an ICMP error about it (port-unreachable as
// ECONNREFUSED, administratively-prohibited as EHOSTUNREACH, a router's
// fragmentation-needed as EMSGSIZE, ...: icmpErrnos) on its next read or
// write, and quic-go closes the connection on any socket error. That is
// wanted while dialing (nothing listens: fail at once, as TCP does);
// once the handshake is done (live), QUIC trusts no ICMP (it may be a
// moment's outage on the path, a path MTU probe too large for a link,
// or forged by anyone who guesses the ports), so the report is dropped:
// a datagram whose write reported it counts as lost, which QUIC
// recovers, and the idle timeout ends a connection whose peer is really
// gone.
type connectedUDP struct {
	c     *net.UDPConn
	raddr *net.UDPAddr
	live  *atomic.Bool // the handshake is done
}

func (u connectedUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, err := u.c.Read(p)
		if err != nil && u.icmp(err, false) {
			continue // the error was the socket's one pending report
		}
		return n, u.raddr, err
	}
}

func (u connectedUDP) WriteTo(p []byte, _ net.Addr) (int, error) {
	n, err := u.c.Write(p)
	if err != nil && u.icmp(err, true) {
		return len(p), nil // not sent: lost, as on any path
	}
	return n, err
}

func (u connectedUDP) Close() error                       { return u.c.Close() }
func (u connectedUDP) LocalAddr() net.Addr                { return u.c.LocalAddr() }
func (u connectedUDP) SetDeadline(t time.Time) error      { return u.c.SetDeadline(t) }
func (u connectedUDP) SetReadDeadline(t time.Time) error  { return u.c.SetReadDeadline(t) }
func (u connectedUDP) SetWriteDeadline(t time.Time) error { return u.c.SetWriteDeadline(t) }
func (u connectedUDP) SetReadBuffer(n int) error          { return u.c.SetReadBuffer(n) }
func (u connectedUDP) SetWriteBuffer(n int) error         { return u.c.SetWriteBuffer(n) }

// icmpErrnos are the errors a connected UDP socket reports ICMP errors
// as (Linux: icmp_err_convert, icmpv6_err_convert, EMSGSIZE for
// fragmentation-needed and packet-too-big; the BSDs: inetctlerrmap).
// EHOSTDOWN (host-unknown) is left out: wasip1 has no such errno.
var icmpErrnos = [...]syscall.Errno{
	syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	syscall.ENOPROTOOPT, syscall.EPROTO, syscall.EACCES, syscall.EMSGSIZE,
}

// icmp reports whether err, from a read or a write, is the socket's
// report of an ICMP error after the handshake, which QUIC ignores (see
// connectedUDP). A write's EMSGSIZE is passed on: it is also how the
// kernel refuses a datagram too large for the interface, which quic-go
// handles (path MTU discovery).
func (u connectedUDP) icmp(err error, write bool) bool {
	if !u.live.Load() {
		return false
	}
	for _, e := range icmpErrnos {
		if errors.Is(err, e) {
			return !write || e != syscall.EMSGSIZE
		}
	}
	return false
}
