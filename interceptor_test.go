package arbor_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// trace records events from interceptors and handlers, in order.
type trace struct {
	mu sync.Mutex
	ev []string
}

func (tr *trace) add(format string, args ...any) {
	tr.mu.Lock()
	tr.ev = append(tr.ev, fmt.Sprintf(format, args...))
	tr.mu.Unlock()
}

// take returns the events so far and forgets them.
func (tr *trace) take() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	ev := tr.ev
	tr.ev = nil
	return ev
}

// recorder is an interceptor that logs the call on its way in and out.
func recorder(tr *trace, name string) arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			tr.add("%s> %s user=%s", name, req.ID, req.Metadata.Get("user"))
			resp, err := next(ctx, req)
			if err != nil {
				tr.add("%s< %s error %v", name, req.ID, arbor.CodeOf(err))
			} else {
				tr.add("%s< %s result %x", name, req.ID, resp.Result)
			}
			return resp, err
		}
	}
}

// requireToken refuses calls without the right token in their metadata.
func requireToken(token string) arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if req.Metadata.Get("token") != token {
				return nil, arbor.NewError(arbor.Unauthenticated, "bad token for "+req.ID)
			}
			return next(ctx, req)
		}
	}
}

func TestInterceptors(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		tr := &trace{}
		srvPeer := make(chan arbor.Peer, 100)
		srvPeerCheck := func(next arbor.CallFunc) arbor.CallFunc {
			return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
				if req.ID == "add" {
					srvPeer <- req.Peer
				}
				return next(ctx, req)
			}
		}
		srv := newServer(t, arbor.WithInterceptors(recorder(tr, "s1"), requireToken("secret")), arbor.WithInterceptors(srvPeerCheck, recorder(tr, "s2")))
		must(t, arbor.Handle0(srv, "whoami", func(ctx context.Context) (string, error) {
			md := arbor.IncomingMetadata(ctx)
			tr.add("handler user=%s", md.Get("user"))
			return md.Get("user"), nil
		}))
		var peerSeen sync.Map
		peerCheck := func(next arbor.CallFunc) arbor.CallFunc {
			return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
				if req.Peer.Addr != nil {
					peerSeen.Store(req.ID, req.Peer.Addr.Network())
				}
				return next(ctx, req)
			}
		}
		e := start(t, nc, srv)
		c := e.dial(arbor.WithInterceptors(recorder(tr, "c1"), peerCheck, recorder(tr, "c2")))

		ctx := arbor.WithMetadata(testContext(t), "user", "ann", "token", "secret")
		got, err := arbor.Call0[string](ctx, c, "whoami")
		if err != nil || got != "ann" {
			t.Fatalf("whoami = %q, %v", got, err)
		}
		want := []string{
			"c1> whoami user=ann",
			"c2> whoami user=ann",
			"s1> whoami user=ann",
			"s2> whoami user=ann",
			"handler user=ann",
			"s2< whoami result a3616e6e", // msgpack "ann"
			"s1< whoami result a3616e6e",
			"c2< whoami result a3616e6e",
			"c1< whoami result a3616e6e",
		}
		if ev := tr.take(); !slices.Equal(ev, want) {
			t.Errorf("events\n%s\nwant\n%s", strings.Join(ev, "\n"), strings.Join(want, "\n"))
		}

		// A server interceptor short-circuits: the handler never runs.
		_, err = arbor.Call0[string](arbor.WithMetadata(testContext(t), "user", "bob", "token", "guess"), c, "whoami")
		wantCode(t, err, arbor.Unauthenticated, "bad token for whoami")
		if !errors.Is(err, arbor.ErrUnauthenticated) {
			t.Errorf("%v: not ErrUnauthenticated", err)
		}
		want = []string{
			"c1> whoami user=bob",
			"c2> whoami user=bob",
			"s1> whoami user=bob",
			"s1< whoami error Unauthenticated",
			"c2< whoami error Unauthenticated",
			"c1< whoami error Unauthenticated",
		}
		if ev := tr.take(); !slices.Equal(ev, want) {
			t.Errorf("events\n%s\nwant\n%s", strings.Join(ev, "\n"), strings.Join(want, "\n"))
		}

		// Every call goes through the chain, errors of the handler and of
		// the lookup included; the typed paths still work through it.
		if n, err := arbor.Call2[int](ctx, c, "add", 2, 2); err != nil || n != 4 {
			t.Errorf("add through interceptors: %v %v", n, err)
		}
		if out, err := arbor.Call1[[]byte](ctx, c, "echo", []byte("xyz")); err != nil || string(out) != "xyz" {
			t.Errorf("echo through interceptors: %q %v", out, err)
		}
		_, err = arbor.Call0[int](ctx, c, "missing")
		wantCode(t, err, arbor.Unimplemented, "missing")
		_, err = arbor.Call2[int](ctx, c, "add", 1, "x")
		wantCode(t, err, arbor.InvalidArgument, "argument 1")
		tr.take()

		if v, _ := peerSeen.Load("add"); v == nil {
			t.Error("client interceptor saw no Peer.Addr (Request.Peer is documented as the server on the client side)")
		}
		p := recv(t, srvPeer, "the server interceptor")
		if p.Addr == nil || p.Addr.Network() != map[string]string{"tcp": "tcp", "tls": "tcp", "unix": "unix", "mem": "mem", "quic": "udp"}[nc.name] {
			t.Errorf("server interceptor's Request.Peer.Addr = %v", p.Addr)
		}
		if (p.TLS != nil) != (nc.name == "tls" || nc.name == "quic") {
			t.Errorf("server interceptor's Request.Peer.TLS = %v on %s", p.TLS, nc.name)
		}
	})
}

// TestInterceptorRewrites checks that interceptors may change the request
// and the response, and that a client interceptor can answer by itself.
func TestInterceptorRewrites(t *testing.T) {
	ctx := testContext(t)
	// Server: double every int result of "add"; see local errors in full.
	localErr := make(chan error, 1)
	srvIC := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			resp, err := next(ctx, req)
			if req.ID == "missing" {
				localErr <- err
			}
			if err == nil && req.ID == "add" {
				resp.Result = []byte{resp.Result[0] * 2} // positive fixint
			}
			return resp, err
		}
	}
	calls := 0
	cliIC := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			switch req.ID {
			case "cached":
				return &arbor.Response{Result: []byte{0xa2, 'h', 'i'}}, nil // never sent
			case "refused":
				return nil, arbor.NewError(arbor.PermissionDenied, "not from this client")
			case "join":
				req.Args = []byte{0x93, 0xa1, 'x', 0xa1, '+', 0xa1, 'y'} // ["x", "+", "y"]
			}
			req.Metadata = append(req.Metadata, arbor.Pair{Key: "via", Value: "cliIC"})
			calls++
			return next(ctx, req)
		}
	}
	srv := newServer(t, arbor.WithInterceptors(srvIC))
	must(t, arbor.Handle0(srv, "via", func(ctx context.Context) (string, error) {
		return arbor.IncomingMetadata(ctx).Get("via"), nil
	}))
	c := start(t, netCases[3], srv).dial(arbor.WithInterceptors(cliIC))

	if n, err := arbor.Call2[int](ctx, c, "add", 3, 4); err != nil || n != 14 {
		t.Errorf("add(3, 4) with a doubling interceptor = %v, %v; want 14", n, err)
	}
	if s, err := arbor.Call3[string](ctx, c, "join", "a", "b", "c"); err != nil || s != "x+y" {
		t.Errorf("join with rewritten args = %q, %v", s, err)
	}
	if s, err := arbor.Call0[string](ctx, c, "via"); err != nil || s != "cliIC" {
		t.Errorf("metadata added by the client interceptor: %q, %v", s, err)
	}
	if s, err := arbor.Call0[string](ctx, c, "cached"); err != nil || s != "hi" {
		t.Errorf("answered by the client interceptor: %q, %v", s, err)
	}
	_, err := arbor.Call0[string](ctx, c, "refused")
	wantCode(t, err, arbor.PermissionDenied, "not from this client")
	if calls != 3 {
		t.Errorf("%d calls went to the network, want 3", calls)
	}
	_, err = arbor.Call0[int](ctx, c, "missing")
	wantCode(t, err, arbor.Unimplemented)
	// On the server, before the wire, the error has its category.
	if err := recv(t, localErr, "the server interceptor"); !errors.Is(err, arbor.ErrUnknownMethod) {
		t.Errorf("server interceptor saw %v, want an ErrUnknownMethod", err)
	}
}

func TestMetadata(t *testing.T) {
	for _, withIC := range []bool{false, true} {
		t.Run(fmt.Sprintf("interceptors=%v", withIC), func(t *testing.T) {
			var sopts []arbor.ServerOption
			var copts []arbor.ClientOption
			if withIC {
				ic := arbor.WithInterceptors(func(next arbor.CallFunc) arbor.CallFunc { return next })
				sopts, copts = append(sopts, ic), append(copts, ic)
			}
			srv := arbor.NewServer(sopts...)
			must(t, arbor.Handle0(srv, "md", func(ctx context.Context) ([]string, error) {
				var kv []string
				for _, p := range arbor.IncomingMetadata(ctx) {
					kv = append(kv, p.Key, p.Value)
				}
				return kv, nil
			}))
			c := start(t, netCases[0], srv).dial(copts...)

			ctx := testContext(t)
			got, err := arbor.Call0[[]string](ctx, c, "md")
			if err != nil || len(got) != 0 {
				t.Errorf("no metadata: got %q, %v", got, err)
			}

			ctx1 := arbor.WithMetadata(ctx, "a", "1", "b", "")
			ctx2 := arbor.WithMetadata(ctx1, "a", "2", "ünï", strings.Repeat("v", 1000))
			got, err = arbor.Call0[[]string](ctx2, c, "md")
			want := []string{"a", "1", "b", "", "a", "2", "ünï", strings.Repeat("v", 1000)}
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("metadata: got %q, %v", got, err)
			}
			// The parent context is not changed by its child's additions.
			got, err = arbor.Call0[[]string](ctx1, c, "md")
			if err != nil || !slices.Equal(got, want[:4]) {
				t.Errorf("parent's metadata: got %q, %v", got, err)
			}
			var md arbor.Metadata
			for i := 0; i < len(want); i += 2 {
				md = append(md, arbor.Pair{Key: want[i], Value: want[i+1]})
			}
			if md.Get("a") != "1" || md.Get("ünï") != strings.Repeat("v", 1000) || md.Get("zzz") != "" {
				t.Error("Metadata.Get")
			}
		})
	}
	if md := arbor.IncomingMetadata(context.Background()); md != nil {
		t.Errorf("IncomingMetadata outside a handler = %v", md)
	}
	defer func() {
		if recover() == nil {
			t.Error("WithMetadata with an odd number of strings did not panic")
		}
	}()
	arbor.WithMetadata(context.Background(), "lonely")
}

type peerInfo struct {
	Network, Addr string
	TLS           bool
	TLSVersion    uint16
	ClientCN      string
}

func handlePeer(t testing.TB, s *arbor.Server) {
	must(t, arbor.Handle0(s, "peer", func(ctx context.Context) (peerInfo, error) {
		p, ok := arbor.PeerFromContext(ctx)
		if !ok {
			return peerInfo{}, errors.New("no peer in the handler's context")
		}
		pi := peerInfo{Network: p.Addr.Network(), Addr: p.Addr.String()}
		if p.TLS != nil {
			pi.TLS, pi.TLSVersion = p.TLS.HandshakeComplete, p.TLS.Version
			if len(p.TLS.PeerCertificates) > 0 {
				pi.ClientCN = p.TLS.PeerCertificates[0].Subject.CommonName
			}
		}
		return pi, nil
	}))
}

func TestPeer(t *testing.T) {
	if _, ok := arbor.PeerFromContext(context.Background()); ok {
		t.Error("PeerFromContext outside a handler reported a peer")
	}
	eachNet(t, func(t *testing.T, nc netCase) {
		srv := newServer(t)
		handlePeer(t, srv)
		c := start(t, nc, srv).dial()
		p, err := arbor.Call0[peerInfo](testContext(t), c, "peer")
		if err != nil {
			t.Fatal(err)
		}
		switch nc.name {
		case "tcp", "tls":
			if p.Network != "tcp" || !strings.HasPrefix(p.Addr, "127.0.0.1:") {
				t.Errorf("peer %+v, want a tcp address on 127.0.0.1", p)
			}
		case "unix":
			if p.Network != "unix" {
				t.Errorf("peer %+v, want a unix address", p)
			}
		case "mem":
			if p.Network != "mem" || !strings.HasPrefix(p.Addr, "arbor#") {
				t.Errorf("peer %+v, want mem address arbor#n", p)
			}
		case "quic":
			if !strings.HasPrefix(p.Addr, "127.0.0.1:") {
				t.Errorf("peer %+v, want a udp address on 127.0.0.1", p)
			}
		}
		if wantTLS := nc.name == "tls" || nc.name == "quic"; p.TLS != wantTLS || (wantTLS && p.TLSVersion != tls.VersionTLS13) {
			t.Errorf("peer %+v: TLS state wrong for %s", p, nc.name)
		}
	})
}

// A server interceptor that calls next twice (a retry) runs the handler
// twice; capabilities in the arguments go to the first run only, and the
// second says so rather than blaming the caller's message.
func TestInterceptorRunsHandlerTwice(t *testing.T) {
	ctx := testContext(t)
	twice := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if _, err := next(ctx, req); err != nil {
				return nil, fmt.Errorf("first run: %w", err)
			}
			return next(ctx, req)
		}
	}
	srv := newServer(t, arbor.WithInterceptors(twice))
	runs := 0
	must(t, arbor.Handle1(srv, "twice", func(ctx context.Context, n int) (int, error) { runs++; return 2 * n, nil }))
	must(t, arbor.Handle1(srv, "ping", func(ctx context.Context, r *arbor.Ref) (string, error) {
		return arbor.Call0[string](ctx, r, "hello")
	}))
	c := start(t, netCases[0], srv).dial()
	if n, err := arbor.Call1[int](ctx, c, "twice", 21); err != nil || n != 42 || runs != 2 {
		t.Fatalf("twice(21) = %d, %v after %d runs; want 42 after 2", n, err, runs)
	}
	pong := arbor.NewService("pong")
	must(t, arbor.Handle0(pong, "hello", func(ctx context.Context) (string, error) { return "hi", nil }))
	_, err := arbor.Call1[string](ctx, c, "ping", pong)
	wantCode(t, err, arbor.Internal, "ping", "earlier run of its handler", "calls next twice")
}
