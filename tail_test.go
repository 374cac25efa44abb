package arbor_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
)

// bytesObserver records the encoded sizes of the calls it sees end.
type bytesObserver struct {
	mu   sync.Mutex
	args map[string]int64 // by "function/side"
	res  map[string]int64
}

func (o *bytesObserver) ConnOpened(*conn.Conn)                   {}
func (o *bytesObserver) ConnClosed(*conn.Conn, error)            {}
func (o *bytesObserver) FlowStalled(*conn.Conn, time.Duration)   {}
func (o *bytesObserver) GoAway(*conn.Conn, bool, uint32, string) {}
func (o *bytesObserver) CallStarted(ctx context.Context, _ *conn.CallInfo) context.Context {
	return ctx
}
func (o *bytesObserver) CallEnded(_ context.Context, info *conn.CallInfo, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	side := "server"
	if info.Outgoing {
		side = "client"
	}
	k := info.Function + "/" + side
	o.args[k], o.res[k] = info.ArgBytes, info.ResultBytes
}

// []byte and string arguments and results of 1 KiB and more are left
// out of the encoded call or result (copied once into the write buffer,
// or over 64 KiB sent from where they lie), and every path that needs
// them whole gets them whole: interceptors on both sides,
// retained answers that pipelined calls read, observers' byte counts.
func TestLargeBlobsWholeOnEveryPath(t *testing.T) {
	// 4 KiB: copied once into the write buffer; 300 KiB: not copied.
	for _, size := range []int{4 << 10, 300 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testBlobsWhole(t, size) })
	}
}

func testBlobsWhole(t *testing.T, size int) {
	blob := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	var mu sync.Mutex
	seen := map[string]int{} // what interceptors saw, by function and side
	record := func(side string) arbor.Interceptor {
		return func(next arbor.CallFunc) arbor.CallFunc {
			return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
				resp, err := next(ctx, req)
				mu.Lock()
				seen[req.ID+"/"+side+"/args"] = max(seen[req.ID+"/"+side+"/args"], len(req.Args))
				if resp != nil {
					seen[req.ID+"/"+side+"/result"] = max(seen[req.ID+"/"+side+"/result"], len(resp.Result))
				}
				mu.Unlock()
				return resp, err
			}
		}
	}
	obs := &bytesObserver{args: map[string]int64{}, res: map[string]int64{}}
	newSrv := func(opts ...arbor.ServerOption) string {
		srv := arbor.NewServer(opts...)
		mustS(t, arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil }))
		mustS(t, arbor.Handle1(srv, "echos", func(ctx context.Context, s string) (string, error) { return s, nil }))
		mustS(t, arbor.Handle1(srv, "make", func(ctx context.Context, n int) ([]byte, error) { return blob[:n], nil }))
		mustS(t, arbor.Handle2(srv, "sum", func(ctx context.Context, b []byte, k int) (int, error) {
			s := k
			for _, x := range b {
				s += int(x)
			}
			return s, nil
		}))
		mustS(t, arbor.Handle2(srv, "cat", func(ctx context.Context, a, b []byte) ([]byte, error) { return append(a[:len(a):len(a)], b...), nil }))
		l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
		mustS(t, err)
		t.Cleanup(func() { srv.Close() })
		return l.URL()
	}
	want := 0
	for _, x := range blob {
		want += int(x)
	}
	ctx := context.Background()
	plain := newSrv(arbor.WithObserver(obs))
	intercepted := newSrv(arbor.WithInterceptors(record("server")))
	for _, tc := range []struct {
		name string
		url  string
		opts []arbor.ClientOption
	}{
		{"plain", plain, []arbor.ClientOption{arbor.WithObserver(obs)}},
		{"client interceptor", plain, []arbor.ClientOption{arbor.WithInterceptors(record("client"))}},
		{"server interceptor", intercepted, nil},
	} {
		c, err := arbor.Dial(ctx, tc.url, tc.opts...)
		mustS(t, err)
		t.Cleanup(func() { c.Close() })
		if got, err := arbor.Call1[[]byte](ctx, c, "echo", blob); err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("%s: echo: %d bytes, %v", tc.name, len(got), err)
		}
		if got, err := arbor.Call1[string](ctx, c, "echos", string(blob)); err != nil || got != string(blob) {
			t.Fatalf("%s: echos: %d bytes, %v", tc.name, len(got), err)
		}
		if got, err := arbor.Call1[[]byte](ctx, c, "make", size-1); err != nil || !bytes.Equal(got, blob[:size-1]) {
			t.Fatalf("%s: make: %d bytes, %v", tc.name, len(got), err)
		}
		// Two blobs, the first large: the arguments go as one part.
		if got, err := arbor.Call2[[]byte](ctx, c, "cat", blob, blob[:2000]); err != nil || len(got) != size+2000 || !bytes.Equal(got[size:], blob[:2000]) {
			t.Fatalf("%s: cat: %d bytes, %v", tc.name, len(got), err)
		}
		// A retained answer (a promise) is read whole by the call that
		// uses it, and by its own caller.
		p := arbor.Go1[[]byte](ctx, c, "make", size)
		if got, err := arbor.Call2[int](ctx, c, "sum", p, 1); err != nil || got != want+1 {
			t.Fatalf("%s: sum of a promised blob: %d, %v, want %d", tc.name, got, err, want+1)
		}
		if got, err := p.Wait(); err != nil || !bytes.Equal(got, blob) {
			t.Fatalf("%s: promised blob: %d bytes, %v", tc.name, len(got), err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"echo/client/args", "echo/client/result", "echos/client/args", "make/client/result",
		"echo/server/args", "echo/server/result", "echos/server/result", "make/server/result"} {
		if seen[k] < size-1 {
			t.Errorf("interceptor %s saw %d bytes, want the whole %d-byte blob", strings.ReplaceAll(k, "/", " "), seen[k], size)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, k := range []string{"echo/client", "echo/server"} {
		if obs.args[k] < int64(size) || obs.res[k] < int64(size) {
			t.Errorf("observer %s: %d argument bytes, %d result bytes, want the whole %d-byte blob each", k, obs.args[k], obs.res[k], size)
		}
	}
}
