package arbor_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// Every kind of call leaves the client by one path: the client's bearer
// token reaches a server that requires it, and the client's interceptor
// sees the call, whether it is unary, a promise, a call on a reference
// (returned, or promised and pipelined), a stream of any kind, or raw.
func TestOneCallPath(t *testing.T) {
	ctx := testContext(t)
	srv := arbor.NewServer(arbor.WithBearerAuth(func(ctx context.Context, token string) (context.Context, error) {
		if token != "t0k" {
			return nil, errors.New("bad token")
		}
		return ctx, nil
	}))
	mustS(t, arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	mustS(t, arbor.Handle1(srv, "counter", func(ctx context.Context, start int) (*arbor.Service, error) { return counterService(start), nil }))
	mustS(t, arbor.HandleServerStream(srv, "count", func(ctx context.Context, n int, out *arbor.Sender[int]) error {
		for i := 0; i < n; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	}))
	mustS(t, arbor.HandleClientStream(srv, "sum", func(ctx context.Context, in *arbor.Receiver[int]) (int, error) {
		s := 0
		for {
			v, err := in.Recv()
			if err == io.EOF {
				return s, nil
			}
			if err != nil {
				return 0, err
			}
			s += v
		}
	}))
	mustS(t, arbor.HandleBidiStream(srv, "upper", func(ctx context.Context, in *arbor.Receiver[string], out *arbor.Sender[string]) error {
		for {
			v, err := in.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := out.Send(strings.ToUpper(v)); err != nil {
				return err
			}
		}
	}))

	var mu sync.Mutex
	var seen []string
	record := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			what := req.ID + ":" + string(req.Kind)
			if req.Async {
				what += ":async"
			}
			if req.Target != nil {
				what += ":ref"
			}
			mu.Lock()
			seen = append(seen, what)
			mu.Unlock()
			return next(ctx, req)
		}
	}
	c := start(t, netCases[0], srv).dial(arbor.WithBearerToken("t0k"), arbor.WithInterceptors(record))
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := seen
		seen = nil
		return out
	}
	kinds := []struct {
		name string
		run  func() error
		want []string
	}{
		{"unary", func() error {
			v, err := arbor.Call2[int](ctx, c, "add", 1, 2)
			return check(v == 3, err, "add = %d", v)
		}, []string{"add:unary"}},
		{"promise", func() error {
			v, err := arbor.Go2[int](ctx, c, "add", arbor.Go2[int](ctx, c, "add", 1, 1), 1).Wait()
			return check(v == 3, err, "chained add = %d", v)
		}, []string{"add:unary:async", "add:unary:async"}},
		{"reference", func() error {
			r, err := arbor.Call1[*arbor.Ref](ctx, c, "counter", 10)
			if err != nil {
				return err
			}
			defer r.Close()
			v, err := arbor.Call1[int](ctx, r, "inc", 5)
			return check(v == 15, err, "inc = %d", v)
		}, []string{"counter:unary", "inc:unary:ref"}},
		{"promised reference", func() error {
			p := arbor.Go1[*arbor.Ref](ctx, c, "counter", 1)
			r := arbor.PipelineRef(p)
			defer r.Close()
			v, err := arbor.Go1[int](ctx, r, "inc", 1).Wait()
			return check(v == 2, err, "inc on a promised counter = %d", v)
		}, []string{"counter:unary:async", "inc:unary:async:ref"}},
		{"server stream", func() error {
			s, err := arbor.CallServerStream[int](ctx, c, "count", 3)
			if err != nil {
				return err
			}
			n := 0
			for {
				if _, err := s.Recv(); err == io.EOF {
					break
				} else if err != nil {
					return err
				}
				n++
			}
			return check(n == 3, nil, "%d messages", n)
		}, []string{"count:server-stream"}},
		{"client stream", func() error {
			s, err := arbor.OpenClientStream[int, int](ctx, c, "sum")
			if err != nil {
				return err
			}
			for i := 1; i <= 4; i++ {
				if err := s.Send(i); err != nil {
					return err
				}
			}
			v, err := s.CloseAndRecv()
			return check(v == 10, err, "sum = %d", v)
		}, []string{"sum:client-stream"}},
		{"bidi stream", func() error {
			s, err := arbor.OpenBidiStream[string, string](ctx, c, "upper")
			if err != nil {
				return err
			}
			if err := s.Send("hi"); err != nil {
				return err
			}
			s.CloseSend()
			v, err := s.Recv()
			return check(v == "HI", err, "upper = %q", v)
		}, []string{"upper:bidi-stream"}},
		{"raw", func() error {
			res, err := arbor.CallRaw(ctx, c, "add", []byte{0x92, 2, 2})
			return check(len(res) == 1 && res[0] == 4, err, "raw add = %x", res)
		}, []string{"add:unary"}},
	}
	for _, k := range kinds {
		if err := k.run(); err != nil {
			t.Errorf("%s: %v", k.name, err)
		}
		if got := took(); !slices.Equal(got, k.want) {
			t.Errorf("%s: the interceptor saw %v, want %v", k.name, got, k.want)
		}
	}
	// Without the token every kind is refused: the token above did the work.
	bare := start(t, netCases[0], srv).dial()
	if _, err := arbor.Go2[int](ctx, bare, "add", 1, 2).Wait(); !errors.Is(err, arbor.ErrUnauthenticated) {
		t.Errorf("promise without a token: %v", err)
	}
	if _, err := arbor.CallServerStream[int](ctx, bare, "count", 1); err == nil {
		// The refusal of a stream arrives with its first Recv.
	}
}

// check turns a condition into an error naming what was wrong.
func check(ok bool, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	if !ok {
		return arbor.Errorf(arbor.Internal, format, args...)
	}
	return nil
}

// counterService is a service with an inc method.
func counterService(start int) *arbor.Service {
	var mu sync.Mutex
	n := start
	svc := arbor.NewService("counter")
	arbor.Handle1(svc, "inc", func(ctx context.Context, d int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		n += d
		return n, nil
	})
	return svc
}

// *Client and *Ref are Callers, so the typed helpers take either; a
// CallFunc is one too.
var (
	_ arbor.Caller = (*arbor.Client)(nil)
	_ arbor.Caller = (*arbor.Ref)(nil)
	_ arbor.Caller = arbor.CallFunc(nil)
)
