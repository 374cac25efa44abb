package conn

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/testcerts"
	"github.com/arbor-rpc/arbor/transport"
)

// udpDelayProxy forwards datagrams between one client and target, holding
// each for delay in each direction, so that a round trip over loopback
// takes at least 2×delay and 0-RTT data reaches the server long before
// the client's handshake can complete.
type udpDelayProxy struct {
	pc     *net.UDPConn
	target *net.UDPAddr
	delay  time.Duration
	wg     sync.WaitGroup

	mu     sync.Mutex
	client *net.UDPAddr
	up     *net.UDPConn // towards target, one per client (the tests use one at a time)
}

func newUDPDelayProxy(t *testing.T, target string, delay time.Duration) *udpDelayProxy {
	t.Helper()
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &udpDelayProxy{pc: pc, target: ta, delay: delay}
	p.wg.Add(1)
	go p.fromClients()
	t.Cleanup(func() {
		pc.Close()
		p.mu.Lock()
		if p.up != nil {
			p.up.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *udpDelayProxy) addr() string { return p.pc.LocalAddr().String() }

func (p *udpDelayProxy) fromClients() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.client == nil || p.client.String() != from.String() { // a new client: a new upstream socket
			if p.up != nil {
				p.up.Close()
			}
			up, err := net.DialUDP("udp", nil, p.target)
			if err != nil {
				p.mu.Unlock()
				return
			}
			p.client, p.up = from, up
			p.wg.Add(1)
			go p.fromServer(up, from)
		}
		up := p.up
		p.mu.Unlock()
		msg := append([]byte(nil), buf[:n]...)
		time.AfterFunc(p.delay, func() { up.Write(msg) })
	}
}

func (p *udpDelayProxy) fromServer(up *net.UDPConn, client *net.UDPAddr) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		msg := append([]byte(nil), buf[:n]...)
		time.AfterFunc(p.delay, func() { p.pc.WriteToUDP(msg, client) })
	}
}

// earlyServer records, per call, whether it arrived in 0-RTT data and
// whether the server's handshake had completed when the handler ran.
type earlyServer struct {
	mu    sync.Mutex
	seen  map[string]earlySeen
	conns []*Conn
}

type earlySeen struct{ early, handshaken bool }

// ServeEarly implements EarlyChecker: "get" is idempotent, "put" is not.
func (s *earlyServer) ServeEarly(in *Incoming) bool { return string(in.Function) == "get" }

func (s *earlyServer) ServeCall(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
	done := false
	select {
	case <-in.Conn.NetConn().(transport.EarlyConn).HandshakeComplete():
		done = true
	default:
	}
	s.mu.Lock()
	s.seen[string(in.Function)] = earlySeen{early: in.Early, handshaken: done}
	s.mu.Unlock()
	if in.Stream != nil { // the first message is the result
		m, err := in.Stream.Recv()
		return append(out, m...), err
	}
	return append(out, in.Args...), nil
}

func (s *earlyServer) get(fn string) (earlySeen, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.seen[fn]
	return v, ok
}

// early0RTTSetup starts a quic:// listener with Allow0RTT serving s behind
// a proxy delaying each direction by delay, and makes one full connection
// through it with cache, so that cache holds a session ticket that allows
// 0-RTT. It returns the proxy's address and the client transport config.
func early0RTTSetup(t *testing.T, s *earlyServer, delay time.Duration) (string, *transport.Config) {
	t.Helper()
	files := testcerts.Write(t, t.TempDir())
	ctx := context.Background()
	l, err := transport.Listen(ctx, "quic://127.0.0.1:0", &transport.Config{CertFile: files.ServerCert, KeyFile: files.ServerKey, Allow0RTT: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			if c, err := Server(nc, Config{Handler: s}); err == nil {
				s.mu.Lock()
				s.conns = append(s.conns, c)
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	proxy := newUDPDelayProxy(t, l.Addr().String(), delay)
	ccfg := &transport.Config{CAFile: files.CACert, ServerName: "127.0.0.1", Allow0RTT: true,
		SessionCache: tls.NewLRUClientSessionCache(4)}

	// The first connection: a full handshake, after which the server
	// sends a session ticket; a round trip makes sure it has arrived.
	nc, err := transport.Dial(ctx, "quic://"+proxy.addr(), ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Client(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := cc.Call(ctx, out("get", nil, []byte("warm"))); err != nil {
		t.Fatal(err)
	} else {
		r.Release()
	}
	if nc.(transport.EarlyConn).Used0RTT() {
		t.Fatal("the first connection used 0-RTT without a session")
	}
	cc.Close()
	return "quic://" + proxy.addr(), ccfg
}

// TestEarlyDataOnlyIdempotent resumes a session with 0-RTT and issues an
// idempotent call and a non-idempotent one at once: the idempotent call
// reaches the server in 0-RTT data (before the server's handshake
// completed), the other never does (the client held it until its
// handshake completed), and the server accepted 0-RTT.
func TestEarlyDataOnlyIdempotent(t *testing.T) {
	s := &earlyServer{seen: map[string]earlySeen{}}
	addr, ccfg := early0RTTSetup(t, s, 40*time.Millisecond)
	ctx := context.Background()

	nc, err := transport.Dial(ctx, addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	ec := nc.(transport.EarlyConn)
	select {
	case <-ec.HandshakeComplete():
		t.Fatal("Dial waited for the handshake: no 0-RTT")
	default:
	}
	cc, err := Client(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, call := range []struct {
		fn         string
		idempotent bool
	}{{"get", true}, {"put", false}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := out(call.fn, nil, []byte(call.fn))
			o.Idempotent = call.idempotent
			r, err := cc.Call(ctx, o)
			if err == nil {
				if string(r.Result()) != call.fn {
					t.Errorf("%s: echo %q", call.fn, r.Result())
				}
				r.Release()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	<-ec.HandshakeComplete()
	if !ec.Used0RTT() {
		t.Fatal("the server did not accept 0-RTT")
	}
	if g, _ := s.get("get"); !g.early || g.handshaken {
		t.Fatalf("idempotent call: %+v, want it received and served in 0-RTT data, before the handshake completed", g)
	}
	if p, _ := s.get("put"); p.early || !p.handshaken {
		t.Fatalf("non-idempotent call: %+v, want it received after the handshake completed (never in 0-RTT data)", p)
	}
}

// TestEarlyNonIdempotentHeldByServer sends a call that the client marks
// idempotent but the server does not serve early ("put"): it arrives in
// 0-RTT data, and the server runs it only once its handshake completes.
func TestEarlyNonIdempotentHeldByServer(t *testing.T) {
	s := &earlyServer{seen: map[string]earlySeen{}}
	cc := earlyClient(t, s)
	ctx := context.Background()
	o := out("put", nil, []byte("x"))
	o.Idempotent = true // the client claims it; the server decides
	r, err := cc.Call(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if p, _ := s.get("put"); !p.early || !p.handshaken {
		t.Fatalf("put: %+v, want it received in 0-RTT data and served after the handshake", p)
	}
}

// earlyClient is a client Conn on a resumed QUIC session to s, dialed in
// 0-RTT (its handshake not complete yet); the test's cleanup closes it.
func earlyClient(t *testing.T, s *earlyServer) *Conn {
	t.Helper()
	addr, ccfg := early0RTTSetup(t, s, 40*time.Millisecond)
	nc, err := transport.Dial(context.Background(), addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Client(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// A stream opened on a client still in its 0-RTT handshake, before the
// peer's HELLO arrived, gets the send credit of the peer's window once
// it has: made with none, its first Send waited forever for a CREDIT
// the peer only sends for messages it was sent.
func TestEarlyClientStreamGetsPeerWindow(t *testing.T) {
	cc := earlyClient(t, &earlyServer{seen: map[string]earlySeen{}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := cc.OpenStream(ctx, out("stream", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send([]byte("hello")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if res, err := st.Result(); err != nil || string(res) != "hello" {
		t.Fatalf("result %q, %v", res, err)
	}
}
