package transport

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// udpRelay forwards the datagrams of one client to target and back, from
// one address of its own. Stop closes that address's socket, so the
// client's datagrams meanwhile draw ICMP port-unreachable; Resume binds it
// again.
type udpRelay struct {
	t      *testing.T
	addr   *net.UDPAddr // where the client sends
	up     *net.UDPConn // towards target: the server sees one client throughout
	mu     sync.Mutex
	pc     *net.UDPConn
	client *net.UDPAddr
	wg     sync.WaitGroup
}

func startRelay(t *testing.T, target string) *udpRelay {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{t: t, up: up}
	r.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	r.Resume()
	r.wg.Add(1)
	go func() { // server → client, through whichever socket is bound
		defer r.wg.Done()
		b := make([]byte, 65536)
		for {
			n, err := up.Read(b)
			if err != nil {
				return
			}
			r.mu.Lock()
			pc, client := r.pc, r.client
			r.mu.Unlock()
			if pc != nil && client != nil {
				pc.WriteToUDP(b[:n], client)
			}
		}
	}()
	t.Cleanup(func() {
		r.Stop()
		up.Close()
		r.wg.Wait()
	})
	return r
}

// Resume binds the relay's address (a fresh port the first time).
func (r *udpRelay) Resume() {
	r.t.Helper()
	pc, err := net.ListenUDP("udp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.pc, r.addr = pc, pc.LocalAddr().(*net.UDPAddr)
	r.mu.Unlock()
	r.wg.Add(1)
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
			r.up.Write(b[:n])
		}
	}()
}

// Stop closes the relay's socket: nothing listens on its port.
func (r *udpRelay) Stop() {
	r.mu.Lock()
	pc := r.pc
	r.pc = nil
	r.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

// An established QUIC connection outlives an ICMP port-unreachable: the
// dialer's connected socket reports it as ECONNREFUSED on its next read
// or write, which, after the handshake, says nothing QUIC trusts (it may
// be a moment's outage, or forged), so the connection goes on and its
// data arrives once the path is back. (During the handshake it still
// ends the dial at once: TestQUICDialCanceled.)
func TestQUICSurvivesPortUnreachable(t *testing.T) {
	checkQUICLeaks(t)
	certs := testcerts.Write(t, t.TempDir())
	ln := listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	relay := startRelay(t, ln.Addr().String())
	accepted := acceptOne(ln)
	c, err := Dial(testContext(t), "quic://"+relay.addr.String(), &Config{CAFile: certs.CACert, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if s == nil {
		t.Fatal("Accept failed")
	}
	defer s.Close()
	roundTrip := func(msg string) {
		t.Helper()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("write %q: %v", msg, err)
		}
		b := make([]byte, len(msg))
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(s, b); err != nil || string(b) != msg {
			t.Fatalf("server read %q, %v; want %q", b, err, msg)
		}
	}
	roundTrip("before")

	relay.Stop()
	// Datagrams sent now draw port-unreachable: the kernel queues the
	// error on the dialer's socket.
	for i := 0; i < 5; i++ {
		c.Write([]byte("x"))
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	relay.Resume()

	b := make([]byte, 5)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "xxxxx" {
		t.Fatalf("after the outage the server read %q, %v; want the bytes written during it", b, err)
	}
	roundTrip("after")
	select {
	case <-c.(*quicConn).Done():
		t.Fatal("the dialer's connection closed")
	default:
	}
}
