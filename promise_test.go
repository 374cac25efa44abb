package arbor_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testproxy"
)

type pair struct {
	X int
	Y string
}

func promiseServer(t *testing.T, opts ...arbor.ServerOption) (*arbor.Client, chan error, string) {
	t.Helper()
	srv := arbor.NewServer(opts...)
	mustS(t, arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	mustS(t, arbor.Handle1(srv, "mkpair", func(ctx context.Context, x int) (pair, error) { return pair{X: x, Y: "y"}, nil }))
	mustS(t, arbor.Handle1(srv, "fail", func(ctx context.Context, msg string) (int, error) {
		return 0, arbor.NewError(arbor.FailedPrecondition, msg)
	}))
	ended := make(chan error, 4)
	mustS(t, arbor.Handle0(srv, "block", func(ctx context.Context) (int, error) {
		<-ctx.Done()
		ended <- ctx.Err()
		return 0, ctx.Err()
	}))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	c, err := arbor.Dial(context.Background(), l.URL())
	mustS(t, err)
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c, ended, l.URL()
}

func TestPromiseChain(t *testing.T) {
	c, _, _ := promiseServer(t)
	ctx := context.Background()
	p1 := arbor.Go2[int](ctx, c, "add", 1, 2)
	p2 := arbor.Go2[int](ctx, c, "add", p1, 10)
	p3 := arbor.Go2[int](ctx, c, "add", p2, p1)
	pp := arbor.Go1[pair](ctx, c, "mkpair", p3)
	p4 := arbor.Go2[int](ctx, c, "add", arbor.Field[int](pp, "X"), 100)
	for i, want := range []int{3, 13, 16} {
		got, err := []*arbor.Promise[int]{p1, p2, p3}[i].Wait()
		if err != nil || got != want {
			t.Fatalf("promise %d: %d %v, want %d", i+1, got, err, want)
		}
	}
	if got, err := p4.Wait(); err != nil || got != 116 {
		t.Fatalf("field pipelined: %d %v", got, err)
	}
	if y, err := arbor.Field[string](pp, "Y").Wait(); err != nil || y != "y" {
		t.Fatalf("field wait: %q %v", y, err)
	}
	// A promise is an argument of a blocking call too.
	if v, err := arbor.Call2[int](ctx, c, "add", arbor.Go2[int](ctx, c, "add", 20, 1), 1); err != nil || v != 22 {
		t.Fatalf("Call2 with a promise: %v %v", v, err)
	}
}

func TestPromiseErrorsPropagate(t *testing.T) {
	c, _, _ := promiseServer(t)
	ctx := context.Background()
	bad := arbor.Go1[int](ctx, c, "fail", "no luck")
	dep := arbor.Go2[int](ctx, c, "add", bad, 1)
	_, err := dep.Wait()
	if !errors.Is(err, arbor.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no luck") || !strings.Contains(err.Error(), "promised call") {
		t.Fatalf("dependent of a failed call: %v", err)
	}
	missing := arbor.Go2[int](ctx, c, "add", arbor.Field[int](arbor.Go1[pair](ctx, c, "mkpair", 1), "Z"), 1)
	if _, err := missing.Wait(); !errors.Is(err, arbor.ErrInvalidArgument) || !strings.Contains(err.Error(), `no field "Z"`) {
		t.Fatalf("missing field: %v", err)
	}
	// A promise used after Wait released its answer sends its value.
	done := arbor.Go2[int](ctx, c, "add", 1, 1)
	done.Wait()
	done.Release()
	if v, err := arbor.Go2[int](ctx, c, "add", done, 1).Wait(); err != nil || v != 3 {
		t.Fatalf("use after release: %v %v", v, err)
	}
}

// An error passed along a chain names the first failure once, instead of
// nesting every link's message in the next.
func TestPromiseChainErrorsDoNotNest(t *testing.T) {
	c, _, _ := promiseServer(t)
	ctx := context.Background()
	p := arbor.Go1[int](ctx, c, "fail", "the root cause")
	for i := 0; i < 100; i++ {
		p = arbor.Go2[int](ctx, c, "add", p, 1)
	}
	_, err := p.Wait()
	if !errors.Is(err, arbor.ErrFailedPrecondition) || strings.Count(err.Error(), "the root cause") != 1 {
		t.Fatalf("end of a failed chain: %v", err)
	}
	if n := len(err.Error()); n > 400 {
		t.Fatalf("the error of a 100-link chain is %d bytes: %.200s", n, err)
	}
}

// A promise dropped unused does not cancel its call: a fire-and-forget
// call completes, and the garbage collector's safety net releases the
// answer with a warning.
func TestDroppedPromiseCompletes(t *testing.T) {
	srv := arbor.NewServer()
	done := make(chan int, 1)
	mustS(t, arbor.Handle1(srv, "put", func(ctx context.Context, v int) (bool, error) {
		time.Sleep(50 * time.Millisecond) // long enough for the GC below to run first
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		done <- v
		return true, nil
	}))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	defer srv.Close()
	var logs syncBuffer
	c, err := arbor.Dial(context.Background(), l.URL(), arbor.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	mustS(t, err)
	defer c.Close()
	func() {
		arbor.Go1[bool](context.Background(), c, "put", 42) // dropped at once
	}()
	runtime.GC()
	runtime.GC()
	if v := recv(t, done, "the dropped call to complete"); v != 42 {
		t.Fatalf("put ran with %d", v)
	}
	waitFor(t, func() bool {
		runtime.GC()
		return strings.Contains(logs.String(), "garbage-collected without Wait or Release")
	}, "the safety net to log the leak")
}

func TestPromiseCancelByContext(t *testing.T) {
	c, ended, _ := promiseServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	p := arbor.Go0[int](ctx, c, "block")
	cancel()
	if _, err := p.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v", err)
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler: %v", err)
	}
}

func TestRetainedAnswersBounded(t *testing.T) {
	c, _, _ := promiseServer(t, arbor.WithLimits(arbor.Limits{MaxRetainedAnswers: 2}))
	ctx := context.Background()
	a := arbor.Go2[int](ctx, c, "add", 1, 1) // not waited for: their answers stay
	b := arbor.Go2[int](ctx, c, "add", 2, 2)
	third := arbor.Go2[int](ctx, c, "add", 3, 3)
	if _, err := third.Wait(); !errors.Is(err, arbor.ErrResourceExhausted) || !strings.Contains(err.Error(), "limit 2") {
		t.Fatalf("third retained answer: %v", err)
	}
	a.Release()
	// RELEASE and the next CALL travel in order on the connection.
	if v, err := arbor.Go2[int](ctx, c, "add", 4, 4).Wait(); err != nil || v != 8 {
		t.Fatalf("after release: %d %v", v, err)
	}
	runtime.KeepAlive(b)
}

// Ten dependent calls sent as promises cost one round trip, counted at a
// proxy on the link; awaited one by one they cost ten.
func TestPipeliningSavesRoundTrips(t *testing.T) {
	_, _, url := promiseServer(t)
	proxy := testproxy.Start(t, strings.TrimPrefix(url, "tcp://"), 20*time.Millisecond)
	ctx := context.Background()
	c, err := arbor.Dial(ctx, proxy.URL, arbor.WithKeepAlive(-1, 0))
	mustS(t, err)
	defer c.Close()
	if _, err := arbor.Call2[int](ctx, c, "add", 1, 1); err != nil { // the dial's round trips are done
		t.Fatal(err)
	}

	before := proxy.RoundTrips()
	p := arbor.Go2[int](ctx, c, "add", 0, 1)
	links := []*arbor.Promise[int]{p}
	for i := 0; i < 9; i++ {
		p = arbor.Go2[int](ctx, c, "add", p, 1)
		links = append(links, p)
	}
	v, err := p.Wait()
	if err != nil || v != 10 {
		t.Fatalf("chain: %d %v", v, err)
	}
	// The last answer's RELEASE travels after it and is answered by
	// nothing: one round trip. (The links are released after the count:
	// left to the garbage collector, their RELEASEs could go out between
	// two answers and count a turn.)
	if n := proxy.RoundTrips() - before; n != 1 {
		t.Fatalf("a pipelined chain of 10 took %d round trips, want 1", n)
	}
	for _, l := range links {
		l.Release()
	}

	before = proxy.RoundTrips()
	x := 0
	for i := 0; i < 10; i++ {
		if x, err = arbor.Call2[int](ctx, c, "add", x, 1); err != nil {
			t.Fatal(err)
		}
	}
	if n := proxy.RoundTrips() - before; n != 10 || x != 10 {
		t.Fatalf("ten blocking calls took %d round trips (x=%d), want 10", n, x)
	}
}

// A lost connection rejects every pending promise with a typed
// connection error.
func TestLostConnectionRejectsPromises(t *testing.T) {
	srv := arbor.NewServer()
	started := make(chan struct{}, 4)
	mustS(t, arbor.Handle0(srv, "block", func(ctx context.Context) (int, error) {
		started <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	c, err := arbor.Dial(context.Background(), l.URL())
	mustS(t, err)
	defer c.Close()
	ctx := context.Background()
	p1 := arbor.Go0[int](ctx, c, "block")
	p2 := arbor.Go2[int](ctx, c, "add", p1, 1) // never registered: would fail anyway; must not hang
	p3 := arbor.Go0[int](ctx, c, "block")
	<-started
	<-started
	srv.Close()
	for i, p := range []*arbor.Promise[int]{p1, p2, p3} {
		_, err := p.Wait()
		if !errors.Is(err, arbor.ErrUnavailable) && !errors.Is(err, arbor.ErrUnimplemented) {
			t.Fatalf("promise %d: %v", i+1, err)
		}
		if i != 1 && !errors.Is(err, arbor.ErrConnection) {
			t.Fatalf("promise %d: %v is not a connection error", i+1, err)
		}
	}
}

// Releasing (or dropping) a promise right after sending a call that uses
// it does not pull the answer from under that call.
func TestReleaseAfterDependentCall(t *testing.T) {
	c, _, _ := promiseServer(t)
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		p1 := arbor.Go2[int](ctx, c, "add", i, 1)
		p2 := arbor.Go2[int](ctx, c, "add", p1, 10)
		p1.Release()
		if v, err := p2.Wait(); err != nil || v != i+11 {
			t.Fatalf("round %d: %d %v", i, v, err)
		}
	}
	// A Field of a dropped parent keeps the parent's answer alive.
	f := arbor.Field[int](arbor.Go1[pair](ctx, c, "mkpair", 7), "X")
	runtime.GC()
	runtime.GC()
	if v, err := arbor.Go2[int](ctx, c, "add", f, 1).Wait(); err != nil || v != 8 {
		t.Fatalf("field of a dropped parent: %d %v", v, err)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A chain longer than the limit fails at its first link too many, with
// ResourceExhausted naming the limit, and every later link says the same;
// the links before it work.
func TestPromiseChainLimit(t *testing.T) {
	c, _, _ := promiseServer(t)
	ctx := context.Background()
	const limit = 1000 // the default
	p := arbor.Go2[int](ctx, c, "add", 0, 1)
	var at1000 *arbor.Promise[int]
	for i := 2; i <= limit+50; i++ {
		p = arbor.Go2[int](ctx, c, "add", p, 1)
		if i == limit {
			at1000 = p
		}
	}
	if v, err := at1000.Wait(); err != nil || v != limit {
		t.Fatalf("link %d: %d %v", limit, v, err)
	}
	_, err := p.Wait()
	if !errors.Is(err, arbor.ErrResourceExhausted) || !strings.Contains(err.Error(), "exceeds the limit of 1000") || len(err.Error()) > 300 {
		t.Fatalf("link %d: %v", limit+50, err)
	}
}

// The server bounds chains too, whatever the client: with a lower limit
// on the server, the link over it and the ones after fail with
// ResourceExhausted, never with an unknown answer.
func TestServerChainLimit(t *testing.T) {
	c, _, _ := promiseServer(t, arbor.WithLimits(arbor.Limits{MaxPromiseChain: 10}))
	ctx := context.Background()
	p := arbor.Go2[int](ctx, c, "add", 0, 1)
	for i := 2; i <= 15; i++ {
		p = arbor.Go2[int](ctx, c, "add", p, 1)
	}
	_, err := p.Wait()
	if !errors.Is(err, arbor.ErrResourceExhausted) || !strings.Contains(err.Error(), "promise chain") {
		t.Fatalf("link 15 with a server limit of 10: %v", err)
	}
}

// A server's connections together retain at most MaxMemory bytes of
// answers: a client opening many connections cannot make it keep
// MaxRetainedBytes on each. The answer over it is kept as an error that
// calls pipelined on it get.
func TestRetainedAnswersBoundedPerServer(t *testing.T) {
	srv := arbor.NewServer(arbor.WithLimits(arbor.Limits{MaxMemory: 256 << 10, MaxConnMemory: 256 << 10}))
	mustS(t, arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil }))
	mustS(t, arbor.Handle1(srv, "size", func(ctx context.Context, b []byte) (int, error) { return len(b), nil }))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	defer srv.Close()
	ctx := context.Background()
	big := make([]byte, 100<<10)
	var held []*arbor.Promise[[]byte]
	defer func() {
		for _, p := range held {
			p.Release()
		}
	}()
	var last error
	for i := range 4 { // 400 KiB retained over four connections
		c, err := arbor.Dial(ctx, l.URL())
		mustS(t, err)
		defer c.Close()
		p := arbor.Go1[[]byte](ctx, c, "echo", big)
		held = append(held, p)
		_, last = arbor.Go1[int](ctx, c, "size", p).Wait()
		if i < 2 && last != nil {
			t.Fatalf("connection %d: a call on a retained answer within the bound: %v", i, last)
		}
	}
	if arbor.CodeOf(last) != arbor.ResourceExhausted || !strings.Contains(last.Error(), "all connections") {
		t.Fatalf("the fourth connection's retained answer: %v, want ResourceExhausted naming all connections", last)
	}
}
