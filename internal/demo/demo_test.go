package demo

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every test so a bug fails it instead of hanging it.
const testTimeout = 10 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// handled is what a server-side interceptor saw a handler return.
type handled struct {
	fn      string
	code    arbor.Code
	elapsed time.Duration
}

// start serves the demo catalog on a mem: network and returns a client for
// it, plus the results of the calls the server handled, in order. Cleanup
// closes both and waits for the server.
func start(t *testing.T) (*arbor.Client, <-chan handled) {
	t.Helper()
	ctx := testContext(t)
	mem := transport.NewMemNetwork()
	seen := make(chan handled, 64)
	record := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			begin := time.Now()
			resp, err := next(ctx, req)
			if req.ID != arbor.CatalogFunction {
				seen <- handled{fn: req.ID, code: arbor.CodeOf(err), elapsed: time.Since(begin)}
			}
			return resp, err
		}
	}
	srv := arbor.NewServer(arbor.WithInterceptors(record))
	if err := Register(srv); err != nil {
		t.Fatalf("Register: %v", err)
	}
	l, err := transport.Listen(ctx, "mem:demo", &transport.Config{Mem: mem})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	c, err := arbor.Dial(ctx, "mem:demo", arbor.WithTransport(&transport.Config{Mem: mem}))
	if err != nil {
		srv.Close()
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		if err := <-served; !errors.Is(err, arbor.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return c, seen
}

func TestRegisterTwice(t *testing.T) {
	srv := arbor.NewServer()
	defer srv.Close()
	if err := Register(srv); err != nil {
		t.Fatalf("first Register: %v", err)
	}
	if err := Register(srv); arbor.CodeOf(err) != arbor.AlreadyExists {
		t.Fatalf("second Register = %v, want AlreadyExists", err)
	}
}

func TestCatalog(t *testing.T) {
	c, _ := start(t)
	fs, err := c.Catalog(testContext(t))
	if err != nil {
		t.Fatalf("Catalog: %v", err)
	}
	want := []string{
		"/demo.v1.Greeter/SayHello(demo.v1.HelloRequest) demo.v1.HelloReply",
		"/demo.v1.Greeter/SayHellos(demo.v1.HellosRequest) stream demo.v1.HelloReply",
		"add(int, int) int",
		"chat(stream string) stream string",
		"concat(string, string) string",
		"count(int) stream int",
		"echo(bytes) bytes",
		"fail(string) struct {}",
		"get_iss_object(string) bytes",
		"math_add+full(int, int) int",
		"math_add+full_vb(int, int) int",
		"math_add+mem(int, int) int",
		"math_add+mem_vb(int, int) int",
		"math_add+none(int, int) int",
		"math_mul+full(int, int) int",
		"math_mul+full_vb(int, int) int",
		"math_mul+mem(int, int) int",
		"math_mul+mem_vb(int, int) int",
		"math_mul+none(int, int) int",
		"rq_post_iss_object+full(string, string, bytes) string",
		"sleep(int) int",
		"sum(stream int) int",
		"uuid_100_2(demo.Payload) bytes",
	}
	if len(fs) != len(want) {
		t.Fatalf("Catalog = %v, want %q", fs, want)
	}
	for i, f := range fs {
		if f.String() != want[i] {
			t.Errorf("Catalog[%d] = %q, want %q", i, f, want[i])
		}
	}
}

func TestAdd(t *testing.T) {
	c, _ := start(t)
	ctx := testContext(t)
	for _, tc := range []struct{ a, b, want int }{{2, 3, 5}, {-7, 7, 0}, {1 << 40, 1, 1<<40 + 1}} {
		got, err := arbor.Call2[int](ctx, c, "add", tc.a, tc.b)
		if err != nil || got != tc.want {
			t.Errorf("add(%d, %d) = %d, %v; want %d", tc.a, tc.b, got, err, tc.want)
		}
	}
	_, err := arbor.Call2[int](ctx, c, "add", 1, "x")
	if arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Errorf(`add(1, "x") error = %v, want InvalidArgument`, err)
	}
}

func TestConcat(t *testing.T) {
	c, _ := start(t)
	got, err := arbor.Call2[string](testContext(t), c, "concat", "arb", "or")
	if err != nil || got != "arbor" {
		t.Fatalf(`concat("arb", "or") = %q, %v; want "arbor"`, got, err)
	}
}

func TestEcho(t *testing.T) {
	c, _ := start(t)
	ctx := testContext(t)
	for _, in := range [][]byte{{}, []byte("hello"), {0, 0xff, 0x80, 1}, bytes.Repeat([]byte{7}, 100_000)} {
		got, err := arbor.Call1[[]byte](ctx, c, "echo", in)
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("echo(%d bytes) = %d bytes, %v; want them back", len(in), len(got), err)
		}
	}
}

func TestSleep(t *testing.T) {
	c, _ := start(t)
	begin := time.Now()
	got, err := arbor.Call1[int](testContext(t), c, "sleep", 30)
	if err != nil || got != 30 {
		t.Fatalf("sleep(30) = %d, %v; want 30", got, err)
	}
	if d := time.Since(begin); d < 30*time.Millisecond {
		t.Errorf("sleep(30) returned after %v", d)
	}
	_, err = arbor.Call1[int](testContext(t), c, "sleep", -1)
	if arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Errorf("sleep(-1) error = %v, want InvalidArgument", err)
	}
}

// TestSleepCanceled checks that cancelling the caller's context makes the
// handler itself return early, with Canceled.
func TestSleepCanceled(t *testing.T) {
	c, seen := start(t)
	ctx, cancel := context.WithCancel(testContext(t))
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := arbor.Call1[int](ctx, c, "sleep", 60_000)
	if !errors.Is(err, arbor.ErrCanceled) {
		t.Fatalf("cancelled sleep error = %v, want Canceled", err)
	}
	select {
	case h := <-seen:
		if h.fn != "sleep" || h.code != arbor.Canceled {
			t.Errorf("handler returned %+v, want sleep with Canceled", h)
		}
		if h.elapsed > 5*time.Second {
			t.Errorf("handler ran %v after a cancel at 50ms", h.elapsed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sleep handler did not return after its call was cancelled")
	}
}

// TestSleepDeadline checks the handler's own reaction to a deadline, which
// over the wire races the caller's cancel.
func TestSleepDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := sleep(ctx, 60_000)
	if arbor.CodeOf(err) != arbor.DeadlineExceeded {
		t.Fatalf("sleep past its deadline = %v, want DeadlineExceeded", err)
	}

	c, _ := start(t)
	ctx, cancel = context.WithTimeout(testContext(t), 20*time.Millisecond)
	defer cancel()
	_, err = arbor.Call1[int](ctx, c, "sleep", 60_000)
	if !errors.Is(err, arbor.ErrDeadlineExceeded) {
		t.Fatalf("sleep past the caller's deadline = %v, want DeadlineExceeded", err)
	}
}

func TestFail(t *testing.T) {
	c, _ := start(t)
	_, err := arbor.Call1[struct{}](testContext(t), c, "fail", "boom: it broke")
	var ae *arbor.Error
	if !errors.As(err, &ae) {
		t.Fatalf("fail error = %#v, want an *arbor.Error", err)
	}
	if ae.Code != arbor.Internal || ae.Message != "boom: it broke" {
		t.Errorf("fail error = code %v, message %q; want Internal, %q", ae.Code, ae.Message, "boom: it broke")
	}
}

func TestCallAny(t *testing.T) {
	c, _ := start(t)
	got, err := arbor.CallAny(testContext(t), c, "concat", "a", "b")
	if err != nil || got != "ab" {
		t.Fatalf("CallAny concat = %#v, %v; want \"ab\"", got, err)
	}
}
