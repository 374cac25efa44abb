package arbor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Capabilities passed in a call the server refuses before any handler
// decodes them (an unknown function, an argument that does not decode)
// are released: the peer counted a reference for each.
func TestCapsOfRefusedCallsReleased(t *testing.T) {
	srv := NewServer()
	Handle2(srv, "two", func(ctx context.Context, r *Ref, n int) (int, error) { r.Close(); return n, nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	cc, err := c.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Call1[int](ctx, c, "nosuch", holder("h", 1)); err == nil {
		t.Fatal("call of an unknown function succeeded")
	}
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the capability passed to an unknown function to be released")
	if _, err := Call2[int](ctx, c, "two", holder("h", 2), "x"); err == nil {
		t.Fatal("call with a bad argument succeeded")
	}
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the capability of a call whose argument failed to decode to be released")
}

// A call that carried a capability and timed out after it was sent
// leaves the capability to the peer, which received it: the caller does
// not release it as if the call never left.
func TestCapsOfTimedOutCallStayWithPeer(t *testing.T) {
	srv := NewServer()
	kept := make(chan *Ref, 1)
	Handle1(srv, "keep", func(ctx context.Context, r *Ref) (int, error) {
		kept <- r // a subscription, say: the handler keeps the reference
		<-ctx.Done()
		return 0, ctx.Err()
	})
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := Call1[int](tctx, c, "keep", holder("h", 7)); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("call: %v, want DeadlineExceeded", err)
	}
	r := <-kept
	defer r.Close()
	time.Sleep(50 * time.Millisecond) // the client's release, if any, reaches it
	if v, err := Call0[int](ctx, r, "get"); err != nil || v != 7 {
		t.Fatalf("call on the reference the server kept: %d %v", v, err)
	}
}

// A handler that keeps a capability and fails with ResourceExhausted has
// it still; a call the server refuses before running it (too many
// concurrent calls) has its capabilities released, once.
func TestCapsOfResourceExhaustedCalls(t *testing.T) {
	srv := NewServer(WithLimits(Limits{MaxConcurrentCalls: 1}))
	kept := make(chan *Ref, 1)
	Handle1(srv, "quota", func(ctx context.Context, r *Ref) (int, error) {
		kept <- r
		return 0, Errorf(ResourceExhausted, "over quota")
	})
	gate := make(chan struct{})
	Handle1(srv, "block", func(ctx context.Context, r *Ref) (int, error) {
		defer r.Close()
		<-gate
		return Call0[int](ctx, r, "get")
	})
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	cc, err := c.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Call1[int](ctx, c, "quota", holder("q", 3)); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("quota: %v", err)
	}
	r := <-kept
	time.Sleep(50 * time.Millisecond)
	if v, err := Call0[int](ctx, r, "get"); err != nil || v != 3 {
		t.Fatalf("call on the reference the failed handler kept: %d %v", v, err)
	}
	r.Close()
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the kept reference to be released")

	svc := holder("b", 4)
	blocked := Go1[int](ctx, c, "block", svc)
	waitFor(t, func() bool { return exportsOn(cc) == 1 }, "the blocking call to be sent")
	time.Sleep(50 * time.Millisecond)
	if _, err := Call1[int](ctx, c, "block", svc); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("second call: %v, want ResourceExhausted", err)
	}
	time.Sleep(50 * time.Millisecond) // releases, if any, arrive
	close(gate)
	if v, err := blocked.Wait(); err != nil || v != 4 {
		t.Fatalf("the running call's reference: %d %v", v, err)
	}
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the refused call's capability to be released")
}

// A promise whose call the server refuses (too many retained answers)
// does not leave the capabilities it passed exported for good.
func TestCapsOfRefusedPromisesReleased(t *testing.T) {
	srv := NewServer(WithLimits(Limits{MaxRetainedAnswers: 1}))
	gate := make(chan struct{})
	Handle0(srv, "hold", func(ctx context.Context) (int, error) { <-gate; return 1, nil })
	Handle1(srv, "take", func(ctx context.Context, r *Ref) (int, error) { r.Close(); return 2, nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	cc, err := c.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := Go0[int](ctx, c, "hold")
	if _, err := Go1[int](ctx, c, "take", holder("t", 1)).Wait(); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("promise over the retained limit: %v", err)
	}
	close(gate)
	held.Wait()
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the refused promise's capability to be released")
}

// Wait on a Field the result does not have fails, and still releases the
// answer, as every Wait does.
func TestWaitOnMissingFieldReleases(t *testing.T) {
	srv := NewServer(WithLimits(Limits{MaxRetainedAnswers: 1}))
	Handle1(srv, "pair", func(ctx context.Context, v int) (map[string]int, error) { return map[string]int{"a": v}, nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	for i := 0; i < 3; i++ {
		p := Go1[map[string]int](ctx, c, "pair", i)
		if _, err := Field[int](p, "b").Wait(); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("iteration %d: Wait on a missing field: %v", i, err)
		}
	}
	if v, err := Field[int](Go1[map[string]int](ctx, c, "pair", 5), "a").Wait(); err != nil || v != 5 {
		t.Fatalf("a promise after them: %d %v", v, err)
	}
}

// A call made on a reference just before Close is delivered, even when
// its delivery waits (a serialized service): Cap'n Proto delivers the
// calls sent before a release. The export goes once it has run.
func TestCallBeforeCloseIsDelivered(t *testing.T) {
	f := capServer(t)
	ctx := ctx10(t)
	for i := 0; i < 50; i++ {
		r, err := Call1[*Ref](ctx, f.c, "newCounter", i)
		if err != nil {
			t.Fatal(err)
		}
		sc := <-f.srvConn
		p := Go1[int](ctx, r, "inc", 1)
		r.Close()
		if v, err := p.Wait(); err != nil || v != i+1 {
			t.Fatalf("iteration %d: call sent before Close: %d %v", i, v, err)
		}
		waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the closed reference's export to go")
	}
}

// A call the server answers Unavailable and retryable (a load-shedding
// interceptor, not a GOAWAY's refusal) had its capabilities released
// twice: by the server, which saw no handler take them, and by the
// client, which took the answer for a refusal. The same capability,
// passed to a call still running, was freed under it.
func TestCapsOfRetryableErrorReleasedOnce(t *testing.T) {
	shed := func(next CallFunc) CallFunc {
		return func(ctx context.Context, req *Request) (*Response, error) {
			if req.ID == "shed" {
				return nil, &Error{Code: Unavailable, Retryable: true, Message: "overloaded, retry"}
			}
			return next(ctx, req)
		}
	}
	srv := NewServer(WithInterceptors(shed))
	gate := make(chan struct{})
	Handle1(srv, "block", func(ctx context.Context, r *Ref) (int, error) {
		defer r.Close()
		<-gate
		return Call0[int](ctx, r, "get")
	})
	Handle1(srv, "shed", func(ctx context.Context, r *Ref) (int, error) { r.Close(); return 0, nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	cc, err := c.conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc := holder("b", 4)
	blocked := Go1[int](ctx, c, "block", svc)
	waitFor(t, func() bool { return exportsOn(cc) == 1 }, "the blocking call to be sent")
	if _, err := Call1[int](ctx, c, "shed", svc); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("shed: %v, want Unavailable", err)
	}
	// The server's RELEASE, if any, precedes its answer on the wire: it
	// has been read by now.
	if n := exportsOn(cc); n != 1 {
		t.Errorf("exports while the blocking call holds the capability: %d, want 1", n)
	}
	close(gate)
	if v, err := blocked.Wait(); err != nil || v != 4 {
		t.Fatalf("the running call's reference: %d %v", v, err)
	}
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the capability to be released")
}

// A result whose answer fails after the handler returned it (trailers
// over the wire's limit, a frame too large for the peer) never reaches
// the peer: the capabilities exported for it were kept for good.
func TestCapsOfResultThatFailsAreReleased(t *testing.T) {
	srv := NewServer()
	Handle0(srv, "big", func(ctx context.Context) (*Service, error) {
		SetTrailer(ctx, "t", strings.Repeat("x", 70<<10)) // over MaxMetadata
		return holder("h", 1), nil
	})
	Handle0(srv, "huge", func(ctx context.Context) (pairOut, error) {
		return pairOut{A: holder("a", 1), B: holder("b", 2), Tag: strings.Repeat("x", 5<<20)}, nil // over the client's frame limit
	})
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	if _, err := Call0[*Ref](ctx, c, "big"); !errors.Is(err, ErrInternal) {
		t.Fatalf("big: %v, want Internal", err)
	}
	sc := <-conns
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the export of a result that failed to go out to be released")
	if _, err := Call0[pairIn](ctx, c, "huge"); !errors.Is(err, ErrResourceExhausted) {
		t.Fatalf("huge: %v, want ResourceExhausted", err)
	}
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the exports of a result over the frame limit to be released")
}
