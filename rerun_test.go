package arbor

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// callTwice is a server interceptor that runs the handler twice (a
// retry that does not look at the first outcome), returning the second.
func callTwice(next CallFunc) CallFunc {
	return func(ctx context.Context, req *Request) (*Response, error) {
		if _, err := next(ctx, req); err != nil {
			return nil, fmt.Errorf("first run: %w", err)
		}
		return next(ctx, req)
	}
}

// WithInterceptors promises that a second run of a handler whose
// capabilities went to the first fails with Internal, saying so. A method
// called in process (through a capability passed back to its exporter)
// with a service interceptor that runs it twice fails instead with the
// misleading InvalidArgument 5364621 fixed over a connection ("capability
// index 0 out of range: the message holds 0"): the first run's
// releaseUnused emptied the shared local decoder.
func TestInterceptorRunsHandlerTwiceInProcess(t *testing.T) {
	ctx := ctx10(t)
	box := NewService("box").Use(callTwice)
	mustOK(t, Handle1(box, "ping", func(ctx context.Context, r *Ref) (string, error) {
		defer r.Close() // the handler's own reference
		return Call0[string](ctx, r, "hello")
	}))
	srv := NewServer()
	mustOK(t, Handle0(srv, "box", func(ctx context.Context) (*Service, error) { return box, nil }))
	// relay calls ping on a reference to box that came back to its
	// exporter: in process (callLocal), with pong, the client's service.
	mustOK(t, Handle2(srv, "relay", func(ctx context.Context, b *Ref, pong *Ref) (string, error) {
		defer b.Close()
		defer pong.Close()
		return Call1[string](ctx, b, "ping", pong)
	}))
	c, _ := serveCaps(t, srv)
	b, err := Call0[*Ref](ctx, c, "box")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pong := NewService("pong")
	mustOK(t, Handle0(pong, "hello", func(ctx context.Context) (string, error) { return "hi", nil }))
	_, err = Call2[string](ctx, c, "relay", b, pong)
	if CodeOf(err) != Internal {
		t.Fatalf("in-process ping run twice: %v (code %v), want Internal naming the earlier run", err, CodeOf(err))
	}
}

// A handler run twice by a server interceptor that returns a capability
// exports it on each run; the peer only learns of (and releases) the
// table of the run whose result is sent, so the first run's export is
// held until the connection closes. (shared: both runs return one
// service, which must stay exported until the client lets it go.)
func TestInterceptorRunsHandlerTwiceResultCaps(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprint("shared=", shared), func(t *testing.T) {
			ctx := ctx10(t)
			released := make(chan struct{}, 4)
			one := holder("h", 7).OnRelease(func() { released <- struct{}{} })
			srv := NewServer(WithInterceptors(callTwice))
			mustOK(t, Handle0(srv, "make", func(ctx context.Context) (*Service, error) {
				if shared {
					return one, nil
				}
				return holder("h", 7).OnRelease(func() { released <- struct{}{} }), nil
			}))
			c, conns := serveCaps(t, srv)
			r, err := Call0[*Ref](ctx, c, "make")
			if err != nil {
				t.Fatal(err)
			}
			if shared {
				select {
				case <-released:
					t.Fatal("the service returned was released while the client holds it")
				case <-time.After(50 * time.Millisecond):
				}
			}
			if v := getInt(ctx, t, r); v != 7 {
				t.Fatalf("get = %d, want 7", v)
			}
			r.Close()
			sc := <-conns
			deadline := time.Now().Add(2 * time.Second)
			for exportsOn(sc) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d export(s) held on the server 2 s after the client released the only reference it got", exportsOn(sc))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
