package arbor_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
)

// endEvent is what an OnEnd hook saw.
type endEvent struct {
	id  string
	err error
}

// onEndServer serves a gated call (it answers when gate is sent to, or
// fails with the string sent), a counting stream and an endless one; the
// client's interceptor reports each call's end through Response.OnEnd.
func onEndServer(t *testing.T) (*arbor.Client, chan string, chan endEvent) {
	t.Helper()
	srv := arbor.NewServer()
	gate := make(chan string)
	mustS(t, arbor.Handle0(srv, "gated", func(ctx context.Context) (int, error) {
		select {
		case msg := <-gate:
			if msg != "" {
				return 0, arbor.NewError(arbor.FailedPrecondition, msg)
			}
			return 7, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}))
	mustS(t, arbor.HandleServerStream(srv, "count", func(ctx context.Context, n int, out *arbor.Sender[int]) error {
		for i := 1; i <= n; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	}))
	mustS(t, arbor.HandleServerStream(srv, "hold", func(ctx context.Context, _ int, out *arbor.Sender[int]) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	ends := make(chan endEvent, 16)
	watch := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			resp, err := next(ctx, req)
			if err == nil {
				id := req.ID
				resp.OnEnd(func(err error) { ends <- endEvent{id, err} })
			}
			return resp, err
		}
	}
	c, err := arbor.Dial(context.Background(), l.URL(), arbor.WithInterceptors(watch))
	mustS(t, err)
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c, gate, ends
}

func noEnd(t *testing.T, ends chan endEvent, while string) {
	t.Helper()
	select {
	case e := <-ends:
		t.Fatalf("%s: OnEnd ran for %s (%v) before the call was over", while, e.id, e.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func nextEnd(t *testing.T, ends chan endEvent) endEvent {
	t.Helper()
	select {
	case e := <-ends:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("OnEnd never ran")
	}
	return endEvent{}
}

// TestOnEndFollowsPromises: an interceptor's OnEnd runs when a promise's
// answer arrives, with its error, not when the call was sent.
func TestOnEndFollowsPromises(t *testing.T) {
	c, gate, ends := onEndServer(t)
	ctx := context.Background()

	p := arbor.Go0[int](ctx, c, "gated")
	noEnd(t, ends, "answer pending")
	gate <- ""
	if e := nextEnd(t, ends); e.id != "gated" || e.err != nil {
		t.Fatalf("OnEnd: %+v, want gated with no error", e)
	}
	if v, err := p.Wait(); err != nil || v != 7 {
		t.Fatalf("Wait: %d %v", v, err)
	}

	p = arbor.Go0[int](ctx, c, "gated")
	noEnd(t, ends, "failure pending")
	gate <- "no"
	e := nextEnd(t, ends)
	var ae *arbor.Error
	if !errors.As(e.err, &ae) || ae.Code != arbor.FailedPrecondition || ae.Message != "no" {
		t.Fatalf("OnEnd of a failed promise: %v, want FailedPrecondition: no", e.err)
	}
	p.Wait()

	// Registered once the answer is in: runs at once.
	cctx, cancel := context.WithCancel(ctx)
	p = arbor.Go0[int](cctx, c, "gated")
	cancel()
	if e := nextEnd(t, ends); arbor.CodeOf(e.err) != arbor.Canceled {
		t.Fatalf("OnEnd of a cancelled promise: %v, want Canceled", e.err)
	}
	p.Wait()

	// A unary call is over when its chain returns. The cancelled call's
	// handler may still take a message from gate (its CANCEL races the
	// send): send until the call returns.
	sent := make(chan struct{})
	go func() {
		for {
			select {
			case gate <- "":
			case <-sent:
				return
			}
		}
	}()
	_, err := arbor.Call0[int](ctx, c, "gated")
	close(sent)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-ends:
		if e.err != nil {
			t.Fatalf("unary OnEnd: %v", e.err)
		}
	default:
		t.Fatal("OnEnd of a unary call did not run by the time the call returned")
	}
}

// TestOnEndFollowsStreams: OnEnd runs when a stream has ended, not when
// it opened; a cancelled stream reports Canceled.
func TestOnEndFollowsStreams(t *testing.T) {
	c, _, ends := onEndServer(t)
	ctx := context.Background()

	s, err := arbor.CallServerStream[int](ctx, c, "count", 3)
	mustS(t, err)
	for {
		if _, err := s.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if e := nextEnd(t, ends); e.id != "count" || e.err != nil {
		t.Fatalf("OnEnd: %+v, want count with no error", e)
	}

	h, err := arbor.CallServerStream[int](ctx, c, "hold", 0)
	mustS(t, err)
	noEnd(t, ends, "stream open")
	h.Close()
	if e := nextEnd(t, ends); e.id != "hold" || arbor.CodeOf(e.err) != arbor.Canceled {
		t.Fatalf("OnEnd of a cancelled stream: %+v, want hold Canceled", e)
	}
}
