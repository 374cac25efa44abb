package arbor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testcerts"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

func TestHandlerPanic(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		e := start(t, nc, newServer(t))
		c1, c2 := e.dial(), e.dial()
		for range 3 {
			_, err := arbor.Call0[int](ctx, c1, "panic")
			wantCode(t, err, arbor.Internal, `"panic"`, "panicked", "boom")
		}
		// The same connection and others keep being served.
		for _, c := range []*arbor.Client{c1, c2} {
			if n, err := arbor.Call2[int](ctx, c, "add", 1, 2); err != nil || n != 3 {
				t.Fatalf("add after a panic: %v, %v", n, err)
			}
		}
	})
}

// gate is a function that blocks until the test opens the gate (ignoring
// its context), then returns the server's name.
type gate struct {
	started chan struct{}
	open    chan struct{}
}

func addGate(t testing.TB, s *arbor.Server, name string) *gate {
	g := &gate{started: make(chan struct{}, 16), open: make(chan struct{})}
	must(t, arbor.Handle0(s, "gate", func(ctx context.Context) (string, error) {
		g.started <- struct{}{}
		<-g.open
		return name, nil
	}))
	return g
}

// named is a server whose "who" function returns name.
func named(t testing.TB, name string) *arbor.Server {
	s := newServer(t)
	must(t, arbor.Handle0(s, "who", func(ctx context.Context) (string, error) { return name, nil }))
	return s
}

func TestShutdown(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		srvA := named(t, "A")
		g := addGate(t, srvA, "A")
		e := start(t, nc, srvA)
		c := e.dial()
		other := e.dial()

		type res struct {
			s   string
			err error
		}
		inflight := make(chan res, 1)
		go func() { s, err := arbor.Call0[string](ctx, c, "gate"); inflight <- res{s, err} }()
		recv(t, g.started, "the gated call to start")

		shutdown := make(chan error, 1)
		go func() { shutdown <- srvA.Shutdown(ctx) }()
		// Serve returns as soon as the listener is closed.
		if err := e.served.wait(t); !errors.Is(err, arbor.ErrServerClosed) {
			t.Fatalf("Serve returned %v, want ErrServerClosed", err)
		}
		// New calls during the drain are served (they beat the GOAWAY) or
		// refused as Unavailable; never lost or hung.
		for _, cl := range []*arbor.Client{c, other} {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := arbor.Call0[string](cctx, cl, "who")
			cancel()
			if err != nil && nc.name == "quic" && arbor.CodeOf(err) == arbor.DeadlineExceeded {
				// A redial to a closed UDP port is not refused: QUIC
				// waits for a handshake that never comes.
			} else if err != nil {
				wantCode(t, err, arbor.Unavailable)
			} else if s != "A" {
				t.Errorf("call during drain answered %q", s)
			}
		}
		select {
		case err := <-shutdown:
			t.Fatalf("Shutdown returned %v with a call in flight", err)
		default:
		}

		close(g.open)
		if r := recv(t, inflight, "the in-flight call"); r.err != nil || r.s != "A" {
			t.Fatalf("in-flight call during Shutdown: %q, %v", r.s, r.err)
		}
		if err := recv(t, shutdown, "Shutdown"); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		// Nothing listens any more.
		_, err := arbor.Call0[string](ctx, c, "who")
		wantCode(t, err, arbor.Unavailable)
		if _, err := arbor.Dial(ctx, e.url, arbor.WithTransport(e.cliCfg)); arbor.CodeOf(err) != arbor.Unavailable || !errors.Is(err, arbor.ErrConnection) {
			t.Errorf("Dial after Shutdown: %v, want Unavailable / ErrConnection", err)
		}

		// A new server on the same address: the client redials by itself.
		e.serve(e.url, named(t, "B"))
		for _, cl := range []*arbor.Client{c, other} {
			if s, err := arbor.Call0[string](ctx, cl, "who"); err != nil || s != "B" {
				t.Fatalf("after restart: %q, %v", s, err)
			}
		}
	})
}

// TestShutdownRedial checks the transparent path: while server A drains
// its connection (a call still running) and server B listens on the same
// address, the client's calls move to B by themselves.
func TestShutdownRedial(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		if nc.name == "quic" {
			t.Skip("not applicable: a draining QUIC server's connections share its UDP socket, so no second server can bind the address until the drain ends")
		}
		ctx := testContext(t)
		srvA := named(t, "A")
		g := addGate(t, srvA, "A")
		e := start(t, nc, srvA)
		c := e.dial()

		done := make(chan error, 1)
		go func() { _, err := arbor.Call0[string](ctx, c, "gate"); done <- err }()
		recv(t, g.started, "the gated call")
		shutdown := make(chan error, 1)
		go func() { shutdown <- srvA.Shutdown(ctx) }()
		e.served.wait(t)
		e.serve(e.url, named(t, "B")) // up while A drains

		// Until A's drain reaches this connection its calls are served by
		// A; then they are refused as retryable and the client redials.
		var fromA, failed int
		for {
			s, err := arbor.Call0[string](ctx, c, "who")
			if err != nil {
				// A call that races the GOAWAY may fail instead (see the
				// report); it must be Unavailable.
				wantCode(t, err, arbor.Unavailable)
				failed++
				continue
			}
			if s == "B" {
				break
			}
			fromA++
		}
		t.Logf("%d calls served by A and %d failed before the client moved to B", fromA, failed)
		for range 3 {
			if s, err := arbor.Call0[string](ctx, c, "who"); err != nil || s != "B" {
				t.Fatalf("after the move: %q, %v", s, err)
			}
		}
		close(g.open)
		if err := recv(t, done, "the gated call"); err != nil {
			t.Fatalf("call in flight on the draining connection: %v", err)
		}
		if err := recv(t, shutdown, "Shutdown"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestShutdownTimeout(t *testing.T) {
	srv := newServer(t)
	b := addBlocker(t, srv, "block")
	e := start(t, netCases[0], srv)
	c := e.dial()
	errc := make(chan error, 1)
	go func() { _, err := arbor.Call0[int](context.Background(), c, "block"); errc <- err }()
	recv(t, b.started, "the handler")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown past its deadline returned %v", err)
	}
	// The connection was closed at the deadline: the handler is cancelled
	// and the caller told.
	if err := recv(t, b.ended, "the handler to be cancelled"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler's ctx.Err() = %v", err)
	}
	wantCode(t, recv(t, errc, "the call"), arbor.Unavailable)
}

func TestServerClose(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		srv := newServer(t)
		b := addBlocker(t, srv, "block")
		e := start(t, nc, srv)
		c := e.dial()
		const n = 5
		errc := make(chan error, n)
		for range n {
			go func() { _, err := arbor.Call0[int](context.Background(), c, "block"); errc <- err }()
		}
		for range n {
			recv(t, b.started, "the handlers")
		}
		closed := make(chan error, 1)
		go func() { closed <- srv.Close() }()
		if err := recv(t, closed, "Close"); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := recv(t, b.ended, "the handlers to be cancelled"); !errors.Is(err, context.Canceled) {
				t.Errorf("handler's ctx.Err() = %v, want context.Canceled", err)
			}
			err := recv(t, errc, "the calls")
			wantCode(t, err, arbor.Unavailable)
			if !errors.Is(err, arbor.ErrConnection) {
				t.Errorf("%v: not ErrConnection", err)
			}
		}
		if err := e.served.wait(t); !errors.Is(err, arbor.ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown after Close: %v", err)
		}
	})
}

func TestServeAfterClose(t *testing.T) {
	srv := newServer(t)
	srv.Close()
	l, err := transport.Listen(context.Background(), "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l); !errors.Is(err, arbor.ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve after Close left the listener open")
	}
	if err := srv.ListenAndServe(context.Background(), "tcp://127.0.0.1:0"); !errors.Is(err, arbor.ErrServerClosed) {
		t.Errorf("ListenAndServe after Close: %v", err)
	}
	if err := srv.ListenAndServe(context.Background(), "bogus://x"); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

func TestListenAndServe(t *testing.T) {
	n := transport.NewMemNetwork()
	srv := newServer(t, arbor.WithTransport(&transport.Config{Mem: n}))
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe(context.Background(), "mem:las") }()
	ctx := testContext(t)
	var c *arbor.Client
	// The listener comes up asynchronously; mem: dials fail fast until it does.
	for {
		var err error
		if c, err = arbor.Dial(ctx, "mem:las", arbor.WithTransport(&transport.Config{Mem: n})); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(err)
		case <-time.After(time.Millisecond):
		}
	}
	defer c.Close()
	if c.Addr() != "mem:las" {
		t.Errorf("Addr() = %q", c.Addr())
	}
	if n, err := arbor.Call2[int](ctx, c, "add", 1, 2); err != nil || n != 3 {
		t.Fatal(n, err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, served, "ListenAndServe"); !errors.Is(err, arbor.ErrServerClosed) {
		t.Fatalf("ListenAndServe returned %v", err)
	}
}

func TestClientReconnect(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		srvA := named(t, "A")
		b := addBlocker(t, srvA, "block")
		e := start(t, nc, srvA)
		c := e.dial()
		if s, err := arbor.Call0[string](ctx, c, "who"); err != nil || s != "A" {
			t.Fatal(s, err)
		}
		// A call in flight when the server goes away fails, and by then
		// the client knows its connection is gone.
		errc := make(chan error, 1)
		go func() { _, err := arbor.Call0[int](ctx, c, "block"); errc <- err }()
		recv(t, b.started, "the handler")
		srvA.Close()
		wantCode(t, recv(t, errc, "the call"), arbor.Unavailable)

		// With nothing listening, calls fail as Unavailable / ErrConnection.
		_, err := arbor.Call0[string](ctx, c, "who")
		wantCode(t, err, arbor.Unavailable)
		if !errors.Is(err, arbor.ErrConnection) {
			t.Errorf("%v: not ErrConnection", err)
		}

		// A server on the same address: the next call redials.
		e.serve(e.url, named(t, "B"))
		for range 3 {
			if s, err := arbor.Call0[string](ctx, c, "who"); err != nil || s != "B" {
				t.Fatalf("after restart: %q, %v", s, err)
			}
		}

		// A closed client fails fast and stays closed.
		c.Close()
		_, err = arbor.Call0[string](ctx, c, "who")
		wantCode(t, err, arbor.Unavailable, "closed")
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestClientCloseFailsPendingCalls(t *testing.T) {
	srv := newServer(t)
	b := addBlocker(t, srv, "block")
	e := start(t, netCases[0], srv)
	c, err := arbor.Dial(testContext(t), e.url)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := arbor.Call0[int](context.Background(), c, "block"); errc <- err }()
	recv(t, b.started, "the handler")
	c.Close()
	wantCode(t, recv(t, errc, "the pending call"), arbor.Unavailable)
	// The server notices and cancels the handler.
	if err := recv(t, b.ended, "the handler to be cancelled"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler's ctx.Err() = %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx := testContext(t)
	cases := []struct {
		addr string
		opts []arbor.ClientOption
		code arbor.Code
		cat  error
	}{
		{"bogus://x", nil, arbor.InvalidArgument, arbor.ErrConfig},
		{"mem:x", nil, arbor.InvalidArgument, arbor.ErrConfig}, // no MemNetwork
		{"mem:nobody", []arbor.ClientOption{arbor.WithTransport(&transport.Config{Mem: transport.NewMemNetwork()})}, arbor.Unavailable, arbor.ErrConnection},
		{"unix:" + socketPath(t), nil, arbor.Unavailable, arbor.ErrConnection},
		{closedPort(t), nil, arbor.Unavailable, arbor.ErrConnection},
	}
	for _, tc := range cases {
		c, err := arbor.Dial(ctx, tc.addr, tc.opts...)
		if err == nil {
			c.Close()
			t.Errorf("Dial(%q) succeeded", tc.addr)
			continue
		}
		if arbor.CodeOf(err) != tc.code || !errors.Is(err, tc.cat) {
			t.Errorf("Dial(%q) = %v, want code %v, category %v", tc.addr, err, tc.code, tc.cat)
		}
		if !strings.Contains(err.Error(), tc.addr) && !strings.Contains(err.Error(), strings.TrimPrefix(tc.addr, "tcp://")) {
			t.Errorf("Dial(%q): error %q does not name the address", tc.addr, err)
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := arbor.Dial(cctx, closedPort(t))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: %v", err)
	}
}

// closedPort returns a tcp:// address nothing listens on.
func closedPort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

// silentPeer is a raw TCP server that answers the HELLO and then never
// sends another byte.
func silentPeer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Hour}))
		io.Copy(io.Discard, nc) // swallow everything, answer nothing
		nc.Close()
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return "tcp://" + l.Addr().String()
}

func TestDeadPeer(t *testing.T) {
	c, err := arbor.Dial(testContext(t), silentPeer(t), arbor.WithKeepAlive(20*time.Millisecond, 60*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { _, err := arbor.Call0[int](context.Background(), c, "anything"); errc <- err }()
	err = recv(t, errc, "the call to a dead peer to fail")
	wantCode(t, err, arbor.Unavailable, "keep-alive")
	if !errors.Is(err, arbor.ErrTimeout) {
		t.Errorf("%v: not ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("dead peer detected after %v", d)
	}
}

// TestHostileClients checks that clients that send garbage, break the
// protocol or say nothing do not disturb a good client, and do not hold
// up Close.
func TestHostileClients(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		e := start(t, nc, newServer(t, arbor.WithHandshakeTimeout(testTimeout)))
		good := e.dial()
		call := func() {
			t.Helper()
			if n, err := arbor.Call2[int](ctx, good, "add", 2, 3); err != nil || n != 5 {
				t.Fatalf("good client: %v, %v", n, err)
			}
		}
		call()
		raw := func() net.Conn {
			t.Helper()
			c, err := transport.Dial(ctx, e.url, e.cliCfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(testTimeout))
			return c
		}

		// Garbage instead of a HELLO: the server hangs up.
		g := raw()
		g.Write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64))
		readUntilClosed(t, g)
		call()

		// A good HELLO, then a frame that is not one: GOAWAY naming a
		// protocol error, then the server hangs up.
		p := raw()
		p.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20}))
		p.Write(bytes.Repeat([]byte{0xff}, 64))
		frames := readUntilClosed(t, p)
		if !strings.Contains(frames, "GOAWAY") || !strings.Contains(frames, "protocol error") {
			t.Errorf("server sent %s after a bad frame; want a GOAWAY naming a protocol error", frames)
		}
		call()

		// A client that connects and says nothing.
		raw()
		call()
		// A client that sends half a HELLO.
		h := raw()
		h.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20})[:5])
		call()

		// None of them holds up Close (the handshake timeout is 10s).
		begin := time.Now()
		e.srv.Close()
		if d := time.Since(begin); d > time.Second {
			t.Errorf("Close took %v with clients stuck in the handshake", d)
		}
	})
}

// readUntilClosed reads frames from a raw connection until the server
// closes it, and describes them.
func readUntilClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	r := wire.NewReader(c, 4096, 1<<20)
	var out []string
	for {
		h, p, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return strings.Join(out, ", ")
			}
			var we *wire.Error
			if errors.As(err, &we) {
				t.Fatalf("server sent a malformed frame: %v", err)
			}
			t.Fatalf("reading from the server: %v (after %v)", err, out)
		}
		s := h.Type.String()
		if h.Type == wire.TypeGoAway {
			if g, err := wire.ParseGoAway(p); err == nil {
				s += fmt.Sprintf("(%q)", g.Message)
			}
		}
		out = append(out, s)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func TestMutualTLS(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	f := testcerts.Write(t, dir)
	srv := newServer(t)
	handlePeer(t, srv)
	nc := netCase{"mtls", func(testing.TB) (string, *transport.Config, *transport.Config) {
		return "tls://127.0.0.1:0",
			&transport.Config{CertFile: f.ServerCert, KeyFile: f.ServerKey, CAFile: f.CACert},
			&transport.Config{CAFile: f.CACert, CertFile: f.ClientCert, KeyFile: f.ClientKey}
	}}
	e := start(t, nc, srv)
	good := e.dial()
	p, err := arbor.Call0[peerInfo](ctx, good, "peer")
	if err != nil || !p.TLS || p.ClientCN != "client" {
		t.Fatalf("peer with a client certificate: %+v, %v", p, err)
	}

	// No client certificate: refused as Unauthenticated / ErrTLS. With TLS
	// 1.3 the refusal comes after the client's side of the handshake, so it
	// may surface at Dial (HELLO exchange) or at the first call.
	fail := func(what string, cfg *transport.Config) error {
		t.Helper()
		c, err := arbor.Dial(ctx, e.url, arbor.WithTransport(cfg))
		if err == nil {
			defer c.Close()
			_, err = arbor.Call2[int](ctx, c, "add", 1, 2)
		}
		if err == nil {
			t.Fatalf("%s: call succeeded", what)
		}
		wantCode(t, err, arbor.Unauthenticated, e.url)
		if !errors.Is(err, arbor.ErrTLS) {
			t.Errorf("%s: %v: not ErrTLS", what, err)
		}
		t.Logf("%s: %v", what, err)
		return err
	}
	fail("no client certificate", &transport.Config{CAFile: f.CACert})
	other := testcerts.NewCA(t, "Other CA")
	cert, key := other.Issue(t, dir, "stranger", testcerts.Client)
	fail("certificate from another CA", &transport.Config{CAFile: f.CACert, CertFile: cert, KeyFile: key})
	// A client that does not trust the server's CA refuses it.
	fail("unknown server CA", &transport.Config{CAFile: other.WriteCert(t, dir, "other.pem")})

	// The good client is unaffected.
	if n, err := arbor.Call2[int](ctx, good, "add", 1, 2); err != nil || n != 3 {
		t.Fatalf("good client after refused ones: %v, %v", n, err)
	}
}

func TestLimits(t *testing.T) {
	ctx := testContext(t)
	srv := newServer(t, arbor.WithLimits(arbor.Limits{MaxConcurrentCalls: 1}), arbor.WithMaxFrameSize(64<<10))
	g := addGate(t, srv, "S")
	c := start(t, netCases[0], srv).dial()

	done := make(chan error, 1)
	go func() { _, err := arbor.Call0[string](ctx, c, "gate"); done <- err }()
	recv(t, g.started, "the gated call")
	_, err := arbor.Call2[int](ctx, c, "add", 1, 2)
	wantCode(t, err, arbor.ResourceExhausted, "limit 1")
	close(g.open)
	if err := recv(t, done, "the gated call"); err != nil {
		t.Fatal(err)
	}

	// A call over the server's frame limit is refused before it is sent.
	_, err = arbor.Call1[[]byte](ctx, c, "echo", make([]byte, 100<<10))
	wantCode(t, err, arbor.ResourceExhausted, "frame limit")
	// The connection is fine.
	if out, err := arbor.Call1[[]byte](ctx, c, "echo", make([]byte, 60<<10)); err != nil || len(out) != 60<<10 {
		t.Fatalf("echo under the limit: %d bytes, %v", len(out), err)
	}
}

func TestConcurrentCallers(t *testing.T) {
	callers, calls := 64, 200
	if testing.Short() {
		calls = 20
	}
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		c := start(t, nc, newServer(t)).dial()
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for g := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := []byte(fmt.Sprintf("caller %d", g))
				for i := range calls {
					switch i % 3 {
					case 0:
						n, err := arbor.Call2[int](ctx, c, "add", g, i)
						if err != nil || n != g+i {
							errs <- fmt.Errorf("caller %d: add(%d, %d) = %d, %v", g, g, i, n, err)
							return
						}
					case 1:
						out, err := arbor.Call1[[]byte](ctx, c, "echo", payload)
						if err != nil || !bytes.Equal(out, payload) {
							errs <- fmt.Errorf("caller %d: echo = %q, %v", g, out, err)
							return
						}
					case 2:
						_, err := arbor.Call3[int](ctx, c, "fail", int(arbor.NotFound), string(payload), []byte(nil))
						if ae := (*arbor.Error)(nil); !errors.As(err, &ae) || ae.Code != arbor.NotFound || ae.Message != string(payload) {
							errs <- fmt.Errorf("caller %d: fail = %v", g, err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestShutdownStuckHandshake: a client that never finishes its handshake
// holds Shutdown up only until Shutdown's context ends.
func TestShutdownStuckHandshake(t *testing.T) {
	e := start(t, netCases[0], newServer(t, arbor.WithHandshakeTimeout(testTimeout)))
	good := e.dial()
	silent, err := net.Dial("tcp", strings.TrimPrefix(e.url, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// The good client's call proves the server is up and accepting; the
	// silent one is accepted by then or soon after.
	if _, err := arbor.Call2[int](testContext(t), good, "add", 1, 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err = e.srv.Shutdown(ctx)
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	// Whether the silent connection was accepted before the listener
	// closed is up to the scheduler: nil or the context's error.
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v", err)
	}
	if err := e.served.wait(t); !errors.Is(err, arbor.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
}

// TestCloseDuringShutdown: Close cuts a Shutdown short; running handlers
// are cancelled and both return.
func TestCloseDuringShutdown(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		srv := newServer(t)
		b := addBlocker(t, srv, "block")
		e := start(t, nc, srv)
		c := e.dial()
		errc := make(chan error, 1)
		go func() { _, err := arbor.Call0[int](context.Background(), c, "block"); errc <- err }()
		recv(t, b.started, "the handler")
		shutdown := make(chan error, 1)
		go func() { shutdown <- srv.Shutdown(context.Background()) }()
		e.served.wait(t) // Shutdown has begun
		srv.Close()
		if err := recv(t, b.ended, "the handler to be cancelled"); !errors.Is(err, context.Canceled) {
			t.Errorf("handler's ctx.Err() = %v", err)
		}
		recv(t, shutdown, "Shutdown to return")
		wantCode(t, recv(t, errc, "the call"), arbor.Unavailable)
	})
}

// Listen has registered the listener when it returns: URLs lists it at
// once (a cluster member advertises URLs right after Listen).
func TestListenRegistersBeforeReturning(t *testing.T) {
	for i := range 100 {
		srv := arbor.NewServer()
		l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if urls := srv.URLs(); len(urls) != 1 || urls[0] != l.URL() {
			t.Fatalf("round %d: URLs() = %v right after Listen returned %s", i, urls, l.URL())
		}
		srv.Close()
	}
	srv := arbor.NewServer()
	srv.Close()
	if _, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); !errors.Is(err, arbor.ErrServerClosed) {
		t.Fatalf("Listen on a closed server: %v, want ErrServerClosed", err)
	}
}
