package arbor_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testproxy"
)

type pair struct {
	X int
	Y string
}

func promiseServer(t *testing.T, opts ...arbor.Option) (*arbor.Client, chan error, string) {
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
	// A promise is not a plain argument of a blocking call.
	if _, err := arbor.Call2[int](ctx, c, "add", p1, 1); !errors.Is(err, arbor.ErrInvalidArgument) {
		t.Fatalf("Call2 with a promise: %v", err)
	}
}

func TestPromiseErrorsPropagate(t *testing.T) {
	c, _, _ := promiseServer(t)
	ctx := context.Background()
	bad := arbor.Go1[int](ctx, c, "fail", "no luck")
	dep := arbor.Go2[int](ctx, c, "add", bad, 1)
	_, err := dep.Wait()
	if !errors.Is(err, arbor.ErrFailedPrecondition) || !strings.Contains(err.Error(), "no luck") || !strings.Contains(err.Error(), "argument 0 (promise of call") {
		t.Fatalf("dependent of a failed call: %v", err)
	}
	missing := arbor.Go2[int](ctx, c, "add", arbor.Field[int](arbor.Go1[pair](ctx, c, "mkpair", 1), "Z"), 1)
	if _, err := missing.Wait(); !errors.Is(err, arbor.ErrInvalidArgument) || !strings.Contains(err.Error(), `no field "Z"`) {
		t.Fatalf("missing field: %v", err)
	}
	released := arbor.Go2[int](ctx, c, "add", 1, 1)
	released.Wait()
	released.Release()
	if _, err := arbor.Go2[int](ctx, c, "add", released, 1).Wait(); !errors.Is(err, arbor.ErrInvalidArgument) || !strings.Contains(err.Error(), "released") {
		t.Fatalf("use after release: %v", err)
	}
}

func TestDroppedPromiseCancels(t *testing.T) {
	c, ended, _ := promiseServer(t)
	func() {
		arbor.Go0[int](context.Background(), c, "block") // dropped at once
	}()
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("handler ended with %v", err)
			}
			return
		case <-deadline:
			t.Fatal("dropping the promise did not cancel the handler")
		case <-time.After(10 * time.Millisecond):
		}
	}
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
	c, _, _ := promiseServer(t, arbor.WithMaxRetainedAnswers(2))
	ctx := context.Background()
	a := arbor.Go2[int](ctx, c, "add", 1, 1)
	b := arbor.Go2[int](ctx, c, "add", 2, 2)
	a.Wait()
	b.Wait()
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

// Over a link with a 100 ms round trip, ten dependent calls sent as
// promises take about one round trip; awaited one by one they take ten.
func TestPipeliningSavesRoundTrips(t *testing.T) {
	_, _, url := promiseServer(t)
	proxied := testproxy.Delay(t, strings.TrimPrefix(url, "tcp://"), 50*time.Millisecond)
	ctx := context.Background()
	c, err := arbor.Dial(ctx, proxied, arbor.WithKeepAlive(-1, 0))
	mustS(t, err)
	defer c.Close()

	start := time.Now()
	if _, err := arbor.Call2[int](ctx, c, "add", 1, 1); err != nil {
		t.Fatal(err)
	}
	one := time.Since(start)

	start = time.Now()
	p := arbor.Go2[int](ctx, c, "add", 0, 1)
	for i := 0; i < 9; i++ {
		p = arbor.Go2[int](ctx, c, "add", p, 1)
	}
	v, err := p.Wait()
	chain := time.Since(start)
	if err != nil || v != 10 {
		t.Fatalf("chain: %d %v", v, err)
	}
	t.Logf("one call %v, chain of 10 %v (%.2fx)", one, chain, float64(chain)/float64(one))
	// Ten round trips would be ~1 s; pipelined it is one (plus scheduling).
	if chain > 3*one || chain > 500*time.Millisecond {
		t.Fatalf("chain of 10 took %v against %v for one call: not pipelined", chain, one)
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
		if !errors.Is(err, arbor.ErrUnavailable) && !errors.Is(err, arbor.ErrNotFound) {
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
