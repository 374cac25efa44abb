package transport

import (
	stdcontext "context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// icmpRouter stands between a QUIC dialer and target like a router: it
// forwards the client's datagrams, but one that would not fit a link of
// mtu bytes is dropped and answered with ICMP fragmentation-needed, and
// while reject is set every datagram is answered with that ICMP
// destination-unreachable code instead (13: administratively
// prohibited, as a firewall's REJECT sends). It needs a raw socket
// (CAP_NET_RAW). It listens on 127.0.0.3, so the path MTU the kernel
// learns from its messages stays off 127.0.0.1.
type icmpRouter struct {
	addr   *net.UDPAddr // where the client sends
	pc     *net.UDPConn
	up     *net.UDPConn
	raw    int
	mtu    int
	reject atomic.Int32 // ICMP unreachable code + 1; 0: forward
	sent   atomic.Int32 // ICMP messages sent
	mu     sync.Mutex
	client *net.UDPAddr
	wg     sync.WaitGroup
}

func startICMPRouter(t *testing.T, target string, mtu int) *icmpRouter {
	t.Helper()
	raw, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err != nil {
		t.Skipf("no raw ICMP socket (needs CAP_NET_RAW): %v", err)
	}
	ta, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp4", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	r := &icmpRouter{addr: pc.LocalAddr().(*net.UDPAddr), pc: pc, up: up, raw: raw, mtu: mtu}
	r.wg.Add(2)
	go func() { // client → server
		defer r.wg.Done()
		b := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFromUDP(b)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			r.mu.Unlock()
			switch code := r.reject.Load(); {
			case code != 0:
				r.unreachable(from, n, uint8(code-1), 0)
			case n+28 > r.mtu:
				r.unreachable(from, n, 4, uint16(r.mtu)) // fragmentation needed
			default:
				up.Write(b[:n])
			}
		}
	}()
	go func() { // server → client
		defer r.wg.Done()
		b := make([]byte, 65536)
		for {
			n, err := up.Read(b)
			if err != nil {
				return
			}
			r.mu.Lock()
			client := r.client
			r.mu.Unlock()
			if client != nil {
				pc.WriteToUDP(b[:n], client)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		up.Close()
		r.wg.Wait()
		syscall.Close(raw)
	})
	return r
}

// unreachable answers from's datagram of n bytes to the router with an
// ICMP destination-unreachable of the given code (and next-hop MTU).
func (r *icmpRouter) unreachable(from *net.UDPAddr, n int, code uint8, mtu uint16) {
	m := make([]byte, 8+20+8)
	m[0], m[1] = 3, code
	binary.BigEndian.PutUint16(m[6:], mtu)
	ip := m[8:28] // the offending datagram's IP header
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+n))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8], ip[9] = 64, syscall.IPPROTO_UDP
	copy(ip[12:16], from.IP.To4())
	copy(ip[16:20], r.addr.IP.To4())
	binary.BigEndian.PutUint16(ip[10:], inetChecksum(ip))
	udp := m[28:]
	binary.BigEndian.PutUint16(udp[0:], uint16(from.Port))
	binary.BigEndian.PutUint16(udp[2:], uint16(r.addr.Port))
	binary.BigEndian.PutUint16(udp[4:], uint16(8+n))
	binary.BigEndian.PutUint16(m[2:], inetChecksum(m))
	var to syscall.SockaddrInet4
	copy(to.Addr[:], from.IP.To4())
	if err := syscall.Sendto(r.raw, m, 0, &to); err == nil {
		r.sent.Add(1)
	}
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// icmpRouterPair dials target through an icmpRouter of the given MTU.
func icmpRouterPair(t *testing.T, mtu int) (c, s net.Conn, r *icmpRouter) {
	t.Helper()
	certs := testcerts.Write(t, t.TempDir())
	ln := listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	r = startICMPRouter(t, ln.Addr().String(), mtu)
	accepted := acceptOne(ln)
	c, err := Dial(testContext(t), "quic://"+r.addr.String(), &Config{CAFile: certs.CACert, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if s = <-accepted; s == nil {
		t.Fatal("Accept failed")
	}
	t.Cleanup(func() { s.Close() })
	return c, s, r
}

// sendThrough writes n bytes from c and checks that s reads them all and
// that c's connection stays open.
func sendThrough(t *testing.T, c, s net.Conn, n int) {
	t.Helper()
	go c.Write(make([]byte, n))
	read := make(chan error, 1)
	go func() {
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.ReadFull(s, make([]byte, n))
		read <- err
	}()
	select {
	case err := <-read:
		if err != nil {
			t.Fatalf("the listener read: %v (dialer: %v)", err, quicCause(c))
		}
	case <-c.(*quicConn).Done():
		s.SetReadDeadline(time.Now())
		<-read
		t.Fatalf("the dialer's connection ended: %v", quicCause(c))
	}
	select {
	case <-c.(*quicConn).Done():
		t.Fatalf("the dialer's connection ended: %v", quicCause(c))
	default:
	}
}

func quicCause(c net.Conn) error { return stdcontext.Cause(c.(*quicConn).qc.Context()) }

// A path whose MTU is below the largest packet quic-go probes (1,452
// bytes of UDP payload, 1,480 on the wire) answers the probe with ICMP
// fragmentation-needed; a connected socket reports that as EMSGSIZE on
// its next read, which must not end the connection: an MTU probe that
// does not arrive is what path MTU discovery expects.
func TestQUICSurvivesFragmentationNeeded(t *testing.T) {
	checkQUICLeaks(t)
	c, s, r := icmpRouterPair(t, 1400)
	sendThrough(t, c, s, 4<<20)
	if r.sent.Load() == 0 {
		t.Fatal("no datagram exceeded the path's MTU: path MTU discovery did not probe")
	}
	t.Logf("%d ICMP fragmentation-needed sent", r.sent.Load())
}

// After the handshake, no ICMP error ends a connection (see
// connectedUDP), not only port-unreachable (ECONNREFUSED): a firewall's
// REJECT may send administratively-prohibited (EHOSTUNREACH on a
// connected socket), a host protocol-unreachable (ENOPROTOOPT).
func TestQUICSurvivesOtherUnreachables(t *testing.T) {
	for _, tc := range []struct {
		name string
		code uint8
	}{{"port", 3}, {"protocol", 2}, {"admin-prohibited", 13}} {
		t.Run(tc.name, func(t *testing.T) {
			checkQUICLeaks(t)
			c, s, r := icmpRouterPair(t, 1500)
			sendThrough(t, c, s, 5)
			r.reject.Store(int32(tc.code) + 1)
			for i := 0; i < 5; i++ {
				c.Write([]byte("x"))
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond)
			r.reject.Store(0)
			if r.sent.Load() == 0 {
				t.Fatal("no ICMP sent")
			}
			// The five bytes written during the outage, and more.
			sendThrough(t, c, s, 1000-5)
		})
	}
}

// While dialing, those ICMP errors still end the dial at once, as a
// refusal does (TestQUICDialCanceled): the filter starts with the
// handshake.
func TestQUICDialUnreachable(t *testing.T) {
	checkQUICLeaks(t)
	certs := testcerts.Write(t, t.TempDir())
	ln := listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	r := startICMPRouter(t, ln.Addr().String(), 1500)
	r.reject.Store(13 + 1) // administratively prohibited
	ctx, cancel := stdcontext.WithTimeout(testContext(t), 5*time.Second)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, "quic://"+r.addr.String(), &Config{CAFile: certs.CACert, ServerName: "localhost"})
	if err == nil {
		c.Close()
		t.Fatal("Dial through a rejecting firewall succeeded")
	}
	if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("Dial: %v, want EHOSTUNREACH", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the dial failed after %v", d)
	}
}
