package arbor_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
)

// blocker is a function that blocks until its context ends, telling the
// test when it started and how its context ended.
type blocker struct {
	started chan time.Time // the handler's deadline (zero: none)
	ended   chan error     // the handler's ctx.Err()
}

func addBlocker(t testing.TB, s *arbor.Server, id string) *blocker {
	b := &blocker{started: make(chan time.Time, 64), ended: make(chan error, 64)}
	must(t, arbor.Handle0(s, id, func(ctx context.Context) (int, error) {
		dl, _ := ctx.Deadline()
		b.started <- dl
		<-ctx.Done()
		b.ended <- ctx.Err()
		return 0, ctx.Err()
	}))
	return b
}

func TestCancel(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		srv := newServer(t)
		b := addBlocker(t, srv, "block")
		c := start(t, nc, srv).dial()

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() { _, err := arbor.Call0[int](ctx, c, "block"); errc <- err }()
		if dl := recv(t, b.started, "the handler to start"); !dl.IsZero() {
			t.Errorf("handler has deadline %v, the caller set none", dl)
		}
		cancel()
		err := recv(t, errc, "the cancelled call to return")
		wantCode(t, err, arbor.Canceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%v: not context.Canceled", err)
		}
		if herr := recv(t, b.ended, "the handler's context to end"); !errors.Is(herr, context.Canceled) {
			t.Errorf("handler's ctx.Err() = %v, want context.Canceled", herr)
		}
		// The connection carries on.
		if n, err := arbor.Call2[int](testContext(t), c, "add", 1, 2); err != nil || n != 3 {
			t.Fatalf("add after cancel: %v %v", n, err)
		}
		// A context cancelled before the call fails at once.
		_, err = arbor.Call0[int](ctx, c, "block")
		wantCode(t, err, arbor.Canceled)
	})
}

func TestDeadline(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		srv := newServer(t)
		b := addBlocker(t, srv, "block")
		c := start(t, nc, srv).dial()

		// The handler sees (about) the caller's deadline.
		want := time.Now().Add(time.Hour)
		ctx, cancel := context.WithDeadline(context.Background(), want)
		errc := make(chan error, 1)
		go func() { _, err := arbor.Call0[int](ctx, c, "block"); errc <- err }()
		got := recv(t, b.started, "the handler to start")
		// The deadline travels as a timeout, so the handler's is later by
		// the time the call took to arrive; never earlier.
		if d := got.Sub(want); d < 0 || d > 500*time.Millisecond {
			t.Errorf("handler's deadline is %v off the caller's", d)
		}
		cancel()
		wantCode(t, recv(t, errc, "the call to return"), arbor.Canceled)
		recv(t, b.ended, "the handler to end")

		// A short deadline expires on both sides.
		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := arbor.Call0[int](ctx, c, "block")
		wantCode(t, err, arbor.DeadlineExceeded)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, arbor.ErrTimeout) {
			t.Errorf("%v: not context.DeadlineExceeded / ErrTimeout", err)
		}
		recv(t, b.started, "the handler to start")
		herr := recv(t, b.ended, "the handler's context to end")

		// An expired deadline fails before anything is sent.
		ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err = arbor.Call2[int](ctx, c, "add", 1, 2)
		wantCode(t, err, arbor.DeadlineExceeded)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%v: not context.DeadlineExceeded", err)
		}
		select {
		case <-b.started:
			t.Error("a call with an expired deadline reached the handler")
		default:
		}

		switch {
		case errors.Is(herr, context.DeadlineExceeded):
		default:
			t.Errorf("handler's ctx.Err() = %v, want context.DeadlineExceeded", herr)
		}
	})
}
