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
// A connected socket reports an ICMP port-unreachable as ECONNREFUSED on
// its next read or write, and quic-go closes the connection on any socket
// error. That is wanted while dialing (nothing listens: fail at once, as
// TCP does); once the handshake is done (live), QUIC trusts no ICMP (it
// may be a moment's outage on the path, or forged by anyone who guesses
// the ports), so the refusal is dropped: a datagram whose write reported
// it counts as lost, which QUIC recovers, and the idle timeout ends a
// connection whose peer is really gone.
type connectedUDP struct {
	c     *net.UDPConn
	raddr net.Addr
	live  *atomic.Bool // the handshake is done
}

func (u connectedUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, err := u.c.Read(p)
		if err != nil && u.refused(err) {
			continue // the error was the socket's one pending report
		}
		return n, u.raddr, err
	}
}

func (u connectedUDP) WriteTo(p []byte, _ net.Addr) (int, error) {
	n, err := u.c.Write(p)
	if err != nil && u.refused(err) {
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

// refused reports whether err is the socket's report of an ICMP refusal
// after the handshake, which QUIC ignores (see connectedUDP).
func (u connectedUDP) refused(err error) bool {
	return u.live.Load() && errors.Is(err, syscall.ECONNREFUSED)
}
