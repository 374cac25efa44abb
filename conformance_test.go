package arbor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// conformanceServer serves what TestConformance calls: plain functions,
// functions returning capabilities, a callback into the caller's service,
// a server stream and a large echo.
func conformanceServer(t testing.TB) *arbor.Server {
	t.Helper()
	s := newServer(t)
	must(t, arbor.Handle1(s, "mkpair", func(ctx context.Context, x int) (pair, error) { return pair{X: x, Y: "y"}, nil }))
	must(t, arbor.Handle1(s, "newCounter", func(ctx context.Context, start int) (*arbor.Service, error) {
		return orderedCounter(start), nil
	}))
	must(t, arbor.Handle1(s, "callback", func(ctx context.Context, sink *arbor.Ref) (int, error) {
		defer sink.Close()
		return arbor.Call1[int](ctx, sink, "double", 21)
	}))
	must(t, arbor.HandleServerStream(s, "count", func(ctx context.Context, n int, out *arbor.Sender[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	}))
	return s
}

// orderedCounter is a serialized service whose log records the order its
// calls ran in.
func orderedCounter(start int) *arbor.Service {
	var mu sync.Mutex
	n := start
	var log []int
	svc := arbor.NewService("counter").Serialized()
	arbor.Handle1(svc, "inc", func(ctx context.Context, d int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		n += d
		log = append(log, d)
		return n, nil
	})
	arbor.Handle0(svc, "log", func(ctx context.Context) ([]int, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), log...), nil
	})
	return svc
}

// TestConformance is the conformance table: every call kind, including
// promise pipelining, reference calls, E-order and callbacks, over every
// transport (tcp, unix, tls, mem, quic), with the same expectations.
func TestConformance(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		c := start(t, nc, conformanceServer(t)).dial()
		ctx := testContext(t)
		t.Run("unary", func(t *testing.T) {
			if n, err := arbor.Call2[int](ctx, c, "add", 2, 3); err != nil || n != 5 {
				t.Fatalf("add: %d %v", n, err)
			}
		})
		t.Run("large", func(t *testing.T) {
			in := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: written by reference
			for range 3 {
				out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
				if err != nil || !bytes.Equal(out, in) {
					t.Fatalf("1 MiB echo: %d bytes, %v", len(out), err)
				}
			}
		})
		t.Run("pipelining", func(t *testing.T) {
			p1 := arbor.Go2[int](ctx, c, "add", 1, 2)
			p2 := arbor.Go2[int](ctx, c, "add", p1, 10)
			pp := arbor.Go1[pair](ctx, c, "mkpair", p2)
			p3 := arbor.Go2[int](ctx, c, "add", arbor.Field[int](pp, "X"), 100)
			if v, err := p3.Wait(); err != nil || v != 113 {
				t.Fatalf("pipelined chain: %d %v, want 113", v, err)
			}
			if v, err := p1.Wait(); err != nil || v != 3 {
				t.Fatalf("first promise: %d %v", v, err)
			}
		})
		t.Run("references", func(t *testing.T) {
			ref, err := arbor.Call1[*arbor.Ref](ctx, c, "newCounter", 100)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			for i, want := range []int{101, 103, 106} {
				if got, err := arbor.Call1[int](ctx, ref, "inc", i+1); err != nil || got != want {
					t.Fatalf("inc %d: %d %v, want %d", i+1, got, err, want)
				}
			}
			if _, err := arbor.Call0[int](ctx, ref, "nope"); !errors.Is(err, arbor.ErrUnknownMethod) {
				t.Fatalf("unknown method: %v", err)
			}
		})
		t.Run("pipelined-reference", func(t *testing.T) {
			// A call on a capability that has not arrived yet.
			ref := arbor.PipelineRef(arbor.Go1[*arbor.Ref](ctx, c, "newCounter", 10))
			defer ref.Close()
			if got, err := arbor.Call1[int](ctx, ref, "inc", 5); err != nil || got != 15 {
				t.Fatalf("inc on a promised reference: %d %v, want 15", got, err)
			}
		})
		t.Run("e-order", func(t *testing.T) {
			ref, err := arbor.Call1[*arbor.Ref](ctx, c, "newCounter", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			const n = 100
			ps := make([]*arbor.Promise[int], 0, n)
			for i := 1; i <= n; i++ { // sent without waiting
				ps = append(ps, arbor.Go1[int](ctx, ref, "inc", i))
			}
			for _, p := range ps {
				if _, err := p.Wait(); err != nil {
					t.Fatal(err)
				}
			}
			log, err := arbor.Call0[[]int](ctx, ref, "log")
			if err != nil || len(log) != n {
				t.Fatalf("log: %d entries, %v", len(log), err)
			}
			for i, v := range log {
				if v != i+1 {
					t.Fatalf("call %d ran in position %d: E-order lost", v, i+1)
				}
			}
		})
		t.Run("callback", func(t *testing.T) {
			sink := arbor.NewService("sink")
			must(t, arbor.Handle1(sink, "double", func(ctx context.Context, x int) (int, error) { return 2 * x, nil }))
			if got, err := arbor.Call1[int](ctx, c, "callback", sink); err != nil || got != 42 {
				t.Fatalf("callback: %d %v, want 42", got, err)
			}
		})
		t.Run("server-stream", func(t *testing.T) {
			st, err := arbor.CallServerStream[int](ctx, c, "count", 50)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for i := range 50 {
				if v, err := st.Recv(); err != nil || v != i {
					t.Fatalf("message %d: %d %v", i, v, err)
				}
			}
			if _, err := st.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last message: %v, want io.EOF", err)
			}
		})
	})
}
