package arbor_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

type userKey struct{}

func authServer(t *testing.T, srvOpts []arbor.ServerOption, cliOpts ...arbor.ClientOption) (*arbor.Server, *arbor.Client) {
	t.Helper()
	srv := arbor.NewServer(srvOpts...)
	mustS(t, arbor.Handle0(srv, "whoami", func(ctx context.Context) (string, error) {
		u, _ := ctx.Value(userKey{}).(string)
		arbor.SetTrailer(ctx, "served-by", "test")
		return u, nil
	}))
	mustS(t, arbor.HandleServerStream(srv, "count", func(ctx context.Context, n int, out *arbor.Sender[int]) error {
		for i := 0; i < n; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		arbor.SetTrailer(ctx, "sent", "all")
		return nil
	}))
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mustS(t, arbor.HandleServerStream(srv, "hold", func(ctx context.Context, _ int, out *arbor.Sender[int]) error {
		out.Send(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}))
	l, err := transport.Listen(context.Background(), "tcp://127.0.0.1:0", nil)
	mustS(t, err)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	c, err := arbor.Dial(context.Background(), l.URL(), cliOpts...)
	mustS(t, err)
	t.Cleanup(func() { c.Close(); srv.Close(); <-done })
	return srv, c
}

func validator(ctx context.Context, token string) (context.Context, error) {
	if token != "s3cret" {
		return nil, errors.New("unknown token")
	}
	return context.WithValue(ctx, userKey{}, "alice"), nil
}

func TestBearerAuth(t *testing.T) {
	_, good := authServer(t, []arbor.ServerOption{arbor.WithBearerAuth(validator)}, arbor.WithBearerToken("s3cret"))
	if u, err := arbor.Call0[string](context.Background(), good, "whoami"); err != nil || u != "alice" {
		t.Fatalf("whoami: %q %v", u, err)
	}
	s, err := arbor.CallServerStream[int](context.Background(), good, "count", 3)
	mustS(t, err)
	if _, err := s.Recv(); err != nil {
		t.Fatalf("authorized stream: %v", err)
	}

	_, bad := authServer(t, []arbor.ServerOption{arbor.WithBearerAuth(validator)}, arbor.WithBearerToken("wrong"))
	_, err = arbor.Call0[string](context.Background(), bad, "whoami")
	if !errors.Is(err, arbor.ErrUnauthenticated) || !strings.Contains(err.Error(), "invalid bearer token") {
		t.Fatalf("wrong token: %v", err)
	}
	s, err = arbor.CallServerStream[int](context.Background(), bad, "count", 3)
	mustS(t, err)
	if _, err := s.Recv(); !errors.Is(err, arbor.ErrUnauthenticated) {
		t.Fatalf("stream with wrong token: %v", err)
	}

	_, none := authServer(t, []arbor.ServerOption{arbor.WithBearerAuth(validator)})
	if _, err := arbor.Call0[string](context.Background(), none, "whoami"); !errors.Is(err, arbor.ErrUnauthenticated) || !strings.Contains(err.Error(), "missing bearer token") {
		t.Fatalf("no token: %v", err)
	}
	if _, err := none.Catalog(context.Background()); err != nil {
		t.Fatalf("catalog should stay open: %v", err)
	}
}

func TestTrailers(t *testing.T) {
	_, c := authServer(t, nil)
	var tr arbor.Metadata
	ctx := arbor.CaptureTrailer(context.Background(), &tr)
	if _, err := arbor.Call0[string](ctx, c, "whoami"); err != nil || tr.Get("served-by") != "test" {
		t.Fatalf("unary trailers %v (%v)", tr, err)
	}
	var str arbor.Metadata
	s, err := arbor.CallServerStream[int](arbor.CaptureTrailer(context.Background(), &str), c, "count", 2)
	mustS(t, err)
	for {
		if _, err := s.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if str.Get("sent") != "all" {
		t.Fatalf("stream trailers %v", str)
	}
}

type countingStream struct {
	arbor.Stream
	n *atomic.Int64
}

func (s countingStream) Send(m []byte) error { s.n.Add(1); return s.Stream.Send(m) }

// One interceptor sees streams on both sides, and may wrap the stream to
// watch its messages.
func TestInterceptorsWrapStreams(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	var sent atomic.Int64
	srvIc := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			note("server:" + req.ID + ":" + string(req.Kind))
			if req.Stream != nil {
				req.Stream = countingStream{req.Stream, &sent}
			}
			return next(ctx, req)
		}
	}
	cliIc := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			note("client:" + req.ID + ":" + string(req.Kind))
			return next(ctx, req)
		}
	}
	_, c := authServer(t, []arbor.ServerOption{arbor.WithInterceptors(srvIc)}, arbor.WithInterceptors(cliIc))
	s, err := arbor.CallServerStream[int](context.Background(), c, "count", 5)
	mustS(t, err)
	n := 0
	for {
		if _, err := s.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 5 || sent.Load() != 5 || strings.Join(order, ",") != "client:count:server-stream,server:count:server-stream" {
		t.Fatalf("n=%d sent=%d order=%v", n, sent.Load(), order)
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	_, c := authServer(t, []arbor.ServerOption{arbor.WithLimits(arbor.Limits{MaxConcurrentStreams: 1})})
	s, err := arbor.CallServerStream[int](context.Background(), c, "hold", 0)
	mustS(t, err)
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	s2, err := arbor.CallServerStream[int](context.Background(), c, "hold", 0)
	mustS(t, err)
	if _, err := s2.Recv(); !errors.Is(err, arbor.ErrResourceExhausted) || !strings.Contains(err.Error(), "limit 1") {
		t.Fatalf("second stream: %v", err)
	}
	// Unary calls are not streams and still go through.
	if _, err := arbor.Call0[string](context.Background(), c, "whoami"); err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// Trailers over the wire's metadata limit fail their call with Internal
// naming the limit, instead of reaching the caller as a malformed frame
// that closes the connection with every call on it.
func TestOversizedTrailersFailTheCallOnly(t *testing.T) {
	srv := arbor.NewServer()
	mustS(t, arbor.Handle0(srv, "big", func(ctx context.Context) (int, error) {
		arbor.SetTrailer(ctx, "big", strings.Repeat("t", 70<<10))
		return 1, nil
	}))
	gate := make(chan struct{})
	mustS(t, arbor.Handle0(srv, "wait", func(ctx context.Context) (int, error) { <-gate; return 2, nil }))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	c, err := arbor.Dial(context.Background(), l.URL())
	mustS(t, err)
	defer func() { c.Close(); srv.Close() }()
	ctx := context.Background()
	waiting := arbor.Go0[int](ctx, c, "wait")
	_, err = arbor.Call0[int](ctx, c, "big")
	if arbor.CodeOf(err) != arbor.Internal || !strings.Contains(err.Error(), "over the limit of 65536") {
		t.Fatalf("oversized trailers: %v, want Internal naming the limit", err)
	}
	close(gate)
	if v, err := waiting.Wait(); err != nil || v != 2 {
		t.Fatalf("the call in flight on the same connection: %d %v", v, err)
	}
}
