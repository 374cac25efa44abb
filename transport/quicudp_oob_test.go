//go:build darwin || linux || freebsd

package transport

import (
	"io"
	"testing"

	"github.com/quic-go/quic-go"
	"golang.org/x/net/ipv4"
)

// The dialer's socket must be what quic-go's batching path asks for;
// otherwise quic-go falls back, silently, to a packet per system call
// at the minimum packet size.
var (
	_ quic.OOBCapablePacketConn = connectedUDP{}
	_ interface {
		ReadBatch([]ipv4.Message, int) (int, error)
	} = connectedUDP{}
)

// TestQUICDialerGrowsItsPackets sends 8 MiB from the dialer and checks
// that its packets grew past QUIC's 1,280-byte start: quic-go discovers
// the path's MTU only on a socket it can set don't-fragment on, which the
// dialer's was not while it hid its descriptor.
func TestQUICDialerGrowsItsPackets(t *testing.T) {
	checkQUICLeaks(t)
	c, s, _, _ := quicPair(t)
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		done <- n
	}()
	buf := make([]byte, 64<<10)
	const total = 8 << 20
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n := <-done; n != total {
		t.Fatalf("server read %d bytes, want %d", n, total)
	}
	st := c.(*quicConn).qc.ConnectionStats()
	avg := st.BytesSent / max(st.PacketsSent, 1)
	t.Logf("dialer: %d packets, %d bytes, %d bytes per packet", st.PacketsSent, st.BytesSent, avg)
	if avg <= 1300 {
		t.Errorf("the dialer's packets average %d bytes: no path MTU discovery (quic-go took the socket for a plain PacketConn)", avg)
	}
}
