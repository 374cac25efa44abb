package arbor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// These tests follow capabilities where a Level 1 vat sends them: inside
// values, back to their exporter, on through a third party, and around
// callback cycles.

// holder is a capability's box: a service.
func holder(name string, v int) *Service {
	svc := NewService(name)
	Handle0(svc, "get", func(ctx context.Context) (int, error) { return v, nil })
	return svc
}

// pairOut and pairIn are one struct as its sender and its receiver see
// it: services go out, references come in.
type pairOut struct {
	A, B *Service
	Tag  string
}

type pairIn struct {
	A, B *Ref
	Tag  string
}

type nestedIn struct {
	List []*Ref
	ByID map[string]*Ref
	Pair *pairIn
}

type nestedOut struct {
	List []*Service
	ByID map[string]*Service
	Pair *pairOut
}

// serverConns serves srv on TCP and returns a client and the server's
// connections as they are accepted.
func serveCaps(t *testing.T, srv *Server, opts ...ClientOption) (*Client, chan *conn.Conn) {
	t.Helper()
	conns := make(chan *conn.Conn, 64)
	srv.onConn = func(c *conn.Conn) { conns <- c }
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), l.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c, conns
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func getInt(ctx context.Context, t *testing.T, r *Ref) int {
	t.Helper()
	v, err := Call0[int](ctx, r, "get")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A struct holding two capabilities goes both ways; so do slices, maps
// and nested structs of them, each capability exported and counted like
// a top-level one.
func TestCapabilitiesInsideValues(t *testing.T) {
	srv := NewServer()
	if err := Handle1(srv, "swap", func(ctx context.Context, p pairIn) (pairOut, error) {
		defer p.A.Close()
		defer p.B.Close()
		a, err := Call0[int](ctx, p.A, "get")
		if err != nil {
			return pairOut{}, err
		}
		b, err := Call0[int](ctx, p.B, "get")
		if err != nil {
			return pairOut{}, err
		}
		// The server's reply holds two capabilities of its own.
		return pairOut{A: holder("sa", b*10), B: holder("sb", a*10), Tag: p.Tag + "!"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := Handle1(srv, "sum", func(ctx context.Context, n nestedIn) (int, error) {
		// One service twice in a message is one *Ref: close each once,
		// after the last use.
		total := 0
		var all []*Ref
		for _, r := range n.List {
			v, err := Call0[int](ctx, r, "get")
			if err != nil {
				return 0, err
			}
			total += v
			all = append(all, r)
		}
		for _, r := range n.ByID {
			v, err := Call0[int](ctx, r, "get")
			if err != nil {
				return 0, err
			}
			total += v
			all = append(all, r)
		}
		if n.List[0] != n.List[2] || n.List[0] != n.ByID["y"] {
			return 0, Errorf(Internal, "one capability decoded as several references")
		}
		closeAll(all)
		if n.Pair != nil {
			total += 1000
			n.Pair.A.Close()
			n.Pair.B.Close()
		}
		return total, nil
	}); err != nil {
		t.Fatal(err)
	}
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	out, err := Call1[pairIn](ctx, c, "swap", pairOut{A: holder("ca", 1), B: holder("cb", 2), Tag: "x"})
	if err != nil {
		t.Fatal(err)
	}
	sc := <-conns
	if out.Tag != "x!" || out.A == nil || out.B == nil || out.A == out.B {
		t.Fatalf("reply %+v", out)
	}
	if a, b := getInt(ctx, t, out.A), getInt(ctx, t, out.B); a != 20 || b != 10 {
		t.Fatalf("reply capabilities read %d, %d; want 20, 10", a, b)
	}
	if n := exportsOn(sc); n != 2 {
		t.Fatalf("the server exports %d services, want 2", n)
	}
	cc := c.cur.Load()
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the server to release the client's two services")
	out.A.Close()
	out.B.Close()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the client to release the server's two services")

	// The same service twice in one message is one table entry, counted
	// once per occurrence.
	same := holder("same", 7)
	n := nestedOut{
		List: []*Service{same, holder("l2", 2), same},
		ByID: map[string]*Service{"x": holder("x", 3), "y": same},
		Pair: &pairOut{A: holder("pa", 0), B: holder("pb", 0)},
	}
	if got, err := Call1[int](ctx, c, "sum", n); err != nil || got != 7+2+7+3+7+1000 {
		t.Fatalf("sum = %d, %v", got, err)
	}
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "every nested capability to be released")
}

// A reference passed back to its exporter is the exporter's own object:
// the same *Service, called in process, capabilities going both ways as
// references.
func TestReferenceBackIsLocal(t *testing.T) {
	srv := NewServer()
	var made atomic.Pointer[Service]
	var returned atomic.Int32
	box := func(v int) *Service {
		svc := holder("box", v)
		Handle1(svc, "add", func(ctx context.Context, other *Ref) (int, error) {
			defer other.Close()
			o, err := Call0[int](ctx, other, "get")
			return v + o, err
		})
		Handle0(svc, "spawn", func(ctx context.Context) (*Service, error) {
			returned.Add(1)
			return holder("child", v+1), nil
		})
		return svc
	}
	Handle1(srv, "box", func(ctx context.Context, v int) (*Service, error) {
		svc := box(v)
		made.Store(svc)
		return svc, nil
	})
	var sawLocal atomic.Bool
	Handle1(srv, "inspect", func(ctx context.Context, p pairIn) (int, error) {
		defer p.A.Close()
		defer p.B.Close()
		sawLocal.Store(p.A.local != nil && p.A.local == made.Load())
		// A method of the local object that takes and returns capabilities.
		sum, err := Call1[int](ctx, p.A, "add", p.B)
		if err != nil {
			return 0, err
		}
		child, err := Call0[*Ref](ctx, p.A, "spawn")
		if err != nil {
			return 0, err
		}
		defer child.Close()
		if child.local == nil {
			return 0, Errorf(Internal, "spawned child is not local")
		}
		v, err := Call0[int](ctx, child, "get")
		return sum*100 + v, err
	})
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	ref, err := Call1[*Ref](ctx, c, "box", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	sc := <-conns
	got, err := Call1[int](ctx, c, "inspect", pairIn{A: ref, B: ref, Tag: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if !sawLocal.Load() {
		t.Fatal("the reference passed back did not resolve to the exporter's own service")
	}
	if got != (5+5)*100+6 || returned.Load() != 1 {
		t.Fatalf("inspect = %d (spawned %d), want %d", got, returned.Load(), (5+5)*100+6)
	}
	// Nothing leaked: the client's reference is the only one counted.
	if n := exportsOn(sc); n != 1 {
		t.Fatalf("the server exports %d services, want 1", n)
	}
	ref.Close()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the box to be released")

	// A service's own Ref is local too, and becomes an export when sent.
	own := holder("own", 9).Ref()
	if v := getInt(ctx, t, own); v != 9 {
		t.Fatalf("local Ref read %d", v)
	}
	// Promises work on it: the call runs on its own goroutine.
	spawner := box(1).Ref()
	gp := Go0[*Ref](ctx, spawner, "spawn")
	gv := Go0[int](ctx, spawner, "get")
	if v, err := gv.Wait(); err != nil || v != 1 {
		t.Fatalf("Go on a local reference: %d %v", v, err)
	}
	kid, err := gp.Wait()
	if err != nil || kid.local == nil || getInt(ctx, t, kid) != 2 {
		t.Fatalf("a capability from Go on a local reference: %v %v", kid, err)
	}
	kid.Close()
	if _, err := Call0[int](ctx, PipelineRef(Go0[*Ref](ctx, spawner, "spawn")), "get"); !errors.Is(err, ErrUnimplemented) || !strings.Contains(err.Error(), "Wait for it") {
		t.Fatalf("PipelineRef of an in-process promise: %v", err)
	}
	// Its value can be an argument of a remote call.
	if v, err := Call1[*Ref](ctx, c, "box", Go0[int](ctx, own, "get")); err != nil {
		t.Fatalf("a local promise as a remote argument: %v", err)
	} else {
		v.Close()
	}
	// (It has no "add": the server's call reached the client's service.)
	if _, err := Call1[int](ctx, c, "inspect", pairIn{A: own, B: own}); !errors.Is(err, ErrUnimplemented) || !strings.Contains(err.Error(), `own has no method "add"`) {
		t.Fatalf("inspect with the client's own services: %v", err)
	}
	if sawLocal.Load() {
		t.Fatal("the client's service resolved to a server object")
	}
}

// A capability from server A goes through server B to client C: B proxies
// it, forwarding calls (capabilities in their arguments and results
// included), cancellation and releases.
func TestCapabilityThroughThirdParty(t *testing.T) {
	ctx := ctx10(t)
	// A: the origin, with a counter that calls back into whoever watches
	// it and whose blocking method reports cancellation.
	a := NewServer()
	aConns := make(chan *conn.Conn, 8)
	a.onConn = func(c *conn.Conn) { aConns <- c }
	cancelled := make(chan struct{}, 1)
	Handle1(a, "counter", func(ctx context.Context, start int) (*Service, error) {
		svc := counter(start)
		Handle1(svc, "watch", func(ctx context.Context, sink *Ref) (int, error) {
			defer sink.Close()
			return Call1[int](ctx, sink, "push", 42)
		})
		Handle0(svc, "child", func(ctx context.Context) (*Service, error) { return holder("grandchild", 77), nil })
		Handle0(svc, "block", func(ctx context.Context) (bool, error) {
			<-ctx.Done()
			cancelled <- struct{}{}
			return false, ctx.Err()
		})
		return svc, nil
	})
	la, err := a.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// B: relays A's counters to its own callers.
	toA, err := Dial(ctx, la.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer toA.Close()
	ac := <-aConns
	b := NewServer()
	Handle1(b, "relay", func(ctx context.Context, start int) (*Ref, error) {
		r, err := Call1[*Ref](ctx, toA, "counter", start)
		if err != nil {
			return nil, err
		}
		// Returned, r is handed over: B's proxy holds its own handle.
		return r, nil
	})
	lb, err := b.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// C: the third party.
	cc, err := Dial(ctx, lb.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ref, err := Call1[*Ref](ctx, cc, "relay", 10)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Call1[int](ctx, ref, "inc", 5); err != nil || v != 15 {
		t.Fatalf("inc through B: %d %v", v, err)
	}
	// Calls sent without waiting reach A in the order C made them.
	var ps []*Promise[int]
	for i := 1; i <= 50; i++ {
		ps = append(ps, Go1[int](ctx, ref, "inc", i))
	}
	for _, p := range ps {
		if _, err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		p.Release()
	}
	if log, err := Call0[[]int](ctx, ref, "log"); err != nil || len(log) != 51 {
		t.Fatalf("log through B: %v %v", log, err)
	} else {
		for i, v := range log[1:] {
			if v != i+1 {
				t.Fatalf("E-order lost through the proxy: call %d ran at position %d", v, i+1)
			}
		}
	}
	// A capability in the arguments: A calls back into C, through B.
	sink := NewService("sink")
	Handle1(sink, "push", func(ctx context.Context, v int) (int, error) { return v + 1, nil })
	if v, err := Call1[int](ctx, ref, "watch", sink); err != nil || v != 43 {
		t.Fatalf("callback from A to C through B: %d %v", v, err)
	}
	// A capability in the result: C reaches A's new object through B.
	child, err := Call0[*Ref](ctx, ref, "child")
	if err != nil {
		t.Fatal(err)
	}
	if v := getInt(ctx, t, child); v != 77 {
		t.Fatalf("child read %d", v)
	}
	// Cancellation goes on to A.
	bctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	if _, err := Call0[bool](bctx, ref, "block"); !errors.Is(err, ErrDeadlineExceeded) && !errors.Is(err, ErrCanceled) {
		t.Fatalf("blocked call: %v", err)
	}
	cancel()
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatal("A's handler never saw the cancellation")
	}
	if n := exportsOn(ac); n != 2 { // the counter and the grandchild
		t.Fatalf("A exports %d services to B, want 2", n)
	}
	// Releases go on to A: C's Close frees B's proxy, which frees A's
	// export.
	child.Close()
	waitFor(t, func() bool { return exportsOn(ac) == 1 }, "the grandchild's release to reach A")
	ref.Close()
	waitFor(t, func() bool { return exportsOn(ac) == 0 }, "the counter's release to reach A")

	// The same import passed on twice is one export on the other side.
	r1, err := Call1[*Ref](ctx, cc, "relay", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	// C's connection closing releases what B's proxies hold on A.
	cc.Close()
	waitFor(t, func() bool { return exportsOn(ac) == 0 }, "a closed connection's proxies to release A's export")
}

// The classic cross-call cycles complete: A calls B, which calls back into
// A, which calls B again, on the same references, with no call waiting
// for itself.
func TestCallbackCyclesDoNotHang(t *testing.T) {
	srv := NewServer()
	var server *Service
	server = NewService("ping")
	Handle2(server, "ping", func(ctx context.Context, n int, peer *Ref) (int, error) {
		defer peer.Close()
		if n == 0 {
			return 0, nil
		}
		v, err := Call2[int](ctx, peer, "ping", n-1, server)
		return v + 1, err
	})
	Handle0(srv, "ping", func(ctx context.Context) (*Service, error) { return server, nil })
	c, conns := serveCaps(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ref, err := Call0[*Ref](ctx, c, "ping")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	sc := <-conns
	mine := NewService("pong")
	Handle2(mine, "ping", func(ctx context.Context, n int, peer *Ref) (int, error) {
		defer peer.Close()
		if n == 0 {
			return 0, nil
		}
		v, err := Call2[int](ctx, peer, "ping", n-1, mine)
		return v + 1, err
	})
	for _, depth := range []int{1, 2, 3, 10} {
		if v, err := Call2[int](ctx, ref, "ping", depth, mine); err != nil || v != depth {
			t.Fatalf("cycle of depth %d: %d %v", depth, v, err)
		}
	}
	// Cycles started from both sides at once, on the same references.
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		go func() {
			_, err := Call2[int](ctx, ref, "ping", 20, mine)
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent cycles: %v", err)
		}
	}
	cc := c.cur.Load()
	waitFor(t, func() bool { return exportsOn(cc) == 0 && exportsOn(sc) == 1 }, "every callback reference to be released")

	// A serialized service that is called back into waits for itself: it
	// is bounded by the caller's deadline, not stuck forever.
	srv2 := NewServer()
	var ser *Service
	ser = NewService("serial").Serialized()
	Handle2(ser, "ping", func(ctx context.Context, n int, peer *Ref) (int, error) {
		defer peer.Close()
		if n == 0 {
			return 0, nil
		}
		return Call2[int](ctx, peer, "ping", n-1, ser)
	})
	Handle0(srv2, "serial", func(ctx context.Context) (*Service, error) { return ser, nil })
	c2, _ := serveCaps(t, srv2)
	sref, err := Call0[*Ref](ctx, c2, "serial")
	if err != nil {
		t.Fatal(err)
	}
	defer sref.Close()
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if _, err := Call2[int](short, sref, "ping", 3, mine); !errors.Is(err, ErrDeadlineExceeded) {
		t.Fatalf("re-entering a serialized service: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the deadline took %v to end the cycle", d)
	}
}

// A 1000-deep callback recursion across one connection completes and
// leaves no goroutine behind (goleak checks the package).
func TestDeepCallbackRecursion(t *testing.T) {
	const depth = 1000
	srv := NewServer()
	var server *Service
	server = NewService("deep")
	Handle2(server, "down", func(ctx context.Context, n int, peer *Ref) (int, error) {
		defer peer.Close()
		if n == 0 {
			return 0, nil
		}
		v, err := Call2[int](ctx, peer, "down", n-1, server)
		return v + 1, err
	})
	Handle0(srv, "deep", func(ctx context.Context) (*Service, error) { return server, nil })
	c, _ := serveCaps(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ref, err := Call0[*Ref](ctx, c, "deep")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	mine := NewService("client")
	Handle2(mine, "down", func(ctx context.Context, n int, peer *Ref) (int, error) {
		defer peer.Close()
		if n == 0 {
			return 0, nil
		}
		v, err := Call2[int](ctx, peer, "down", n-1, mine)
		return v + 1, err
	})
	if v, err := Call2[int](ctx, ref, "down", depth, mine); err != nil || v != depth {
		t.Fatalf("recursion %d deep: %d %v", depth, v, err)
	}
}

// Non-serialized services run a later call while an earlier one on the
// same reference is still running; serialized ones do not.
func TestReentrantServiceRunsConcurrently(t *testing.T) {
	srv := NewServer()
	mk := func(serial bool) *Service {
		release := make(chan struct{})
		svc := NewService("gate")
		if serial {
			svc.Serialized()
		}
		Handle0(svc, "wait", func(ctx context.Context) (bool, error) {
			select {
			case <-release:
				return true, nil
			case <-ctx.Done():
				return false, ctx.Err()
			}
		})
		Handle0(svc, "open", func(ctx context.Context) (bool, error) { close(release); return true, nil })
		return svc
	}
	Handle1(srv, "gate", func(ctx context.Context, serial bool) (*Service, error) { return mk(serial), nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	for _, serial := range []bool{false, true} {
		ref, err := Call1[*Ref](ctx, c, "gate", serial)
		if err != nil {
			t.Fatal(err)
		}
		// Serialized, open's deadline ends well before wait's: open waits
		// for wait, which waits for open. Concurrent, both have all the
		// time a loaded machine needs.
		wait, open := 10*time.Second, 5*time.Second
		if serial {
			wait, open = time.Second, 200*time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		octx, ocancel := context.WithTimeout(ctx, open)
		w := Go0[bool](wctx, ref, "wait")
		_, err = Call0[bool](octx, ref, "open")
		got, werr := w.Wait()
		ocancel()
		cancel()
		if !serial && (err != nil || werr != nil || !got) {
			t.Fatalf("concurrent service: open %v, wait %v %v", err, got, werr)
		}
		if serial && !errors.Is(err, ErrDeadlineExceeded) {
			t.Fatalf("serialized service ran open while wait ran: %v", err)
		}
		ref.Close()
	}
}

// Method calls on capabilities run the server's interceptors, which see
// the service and the method; a service's own interceptors can require a
// bearer token for some of its methods.
func TestCapabilityGovernance(t *testing.T) {
	type seen struct{ service, id string }
	calls := make(chan seen, 64)
	srv := NewServer(WithInterceptors(func(next CallFunc) CallFunc {
		return func(ctx context.Context, req *Request) (*Response, error) {
			calls <- seen{req.Service, req.ID}
			return next(ctx, req)
		}
	}))
	vault := NewService("vault").Use(func(next CallFunc) CallFunc {
		return func(ctx context.Context, req *Request) (*Response, error) {
			if req.ID == "open" && IncomingMetadata(ctx).Get("authorization") != "Bearer sesame" {
				return nil, Errorf(Unauthenticated, "vault.%s needs a bearer token", req.ID)
			}
			return next(ctx, req)
		}
	})
	Handle0(vault, "open", func(ctx context.Context) (string, error) { return "gold", nil })
	Handle0(vault, "peek", func(ctx context.Context) (string, error) { return "dark", nil })
	Handle0(srv, "vault", func(ctx context.Context) (*Service, error) { return vault, nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	ref, err := Call0[*Ref](ctx, c, "vault")
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if s := <-calls; s != (seen{"", "vault"}) {
		t.Fatalf("interceptor saw %+v", s)
	}
	if v, err := Call0[string](ctx, ref, "peek"); err != nil || v != "dark" {
		t.Fatalf("peek: %q %v", v, err)
	}
	if s := <-calls; s != (seen{"vault", "peek"}) {
		t.Fatalf("interceptor saw %+v for a method call", s)
	}
	if _, err := Call0[string](ctx, ref, "open"); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("open without a token: %v", err)
	}
	<-calls
	authed := WithMetadata(ctx, "authorization", "Bearer sesame")
	if v, err := Call0[string](authed, ref, "open"); err != nil || v != "gold" {
		t.Fatalf("open with the token: %q %v", v, err)
	}
	// In process, through a reference passed back, the service's
	// interceptors still apply.
	if _, err := Call0[string](ctx, vault.Ref(), "open"); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("local open without a token: %v", err)
	}
	if v, err := Call0[string](authed, vault.Ref(), "open"); err != nil || v != "gold" {
		t.Fatalf("local open with the token: %q %v", v, err)
	}
}

// Promised capabilities, as Cap'n Proto specifies them: passed back to
// the side that will produce them before they resolve, inside a promised
// struct, released before they resolve, and failing with their call's
// error.
func TestPromisedCapabilities(t *testing.T) {
	srv := NewServer()
	gate := make(chan struct{})
	Handle1(srv, "counter", func(ctx context.Context, start int) (*Service, error) { return counter(start), nil })
	Handle1(srv, "slowCounter", func(ctx context.Context, start int) (*Service, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return counter(start), nil
	})
	Handle1(srv, "boxes", func(ctx context.Context, v int) (pairOut, error) {
		return pairOut{A: holder("a", v), B: holder("b", v+1)}, nil
	})
	Handle1(srv, "read", func(ctx context.Context, r *Ref) (int, error) {
		defer r.Close()
		if r.local == nil {
			return 0, Errorf(Internal, "the promised capability did not resolve to the server's own service")
		}
		return Call1[int](ctx, r, "inc", 0)
	})
	Handle1(srv, "readPair", func(ctx context.Context, p pairIn) (int, error) {
		defer p.A.Close()
		defer p.B.Close()
		a, err := Call0[int](ctx, p.A, "get")
		if err != nil {
			return 0, err
		}
		b, err := Call0[int](ctx, p.B, "get")
		return a*10 + b, err
	})
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	// A promised capability passed back before it resolves: the server
	// finds its own object when the answer is in.
	p := Go1[*Ref](ctx, c, "counter", 41)
	pr := PipelineRef(p)
	if v, err := Call1[int](ctx, c, "read", pr); err != nil || v != 41 {
		t.Fatalf("read(promised capability) = %d, %v", v, err)
	}
	sc := <-conns
	pr.Close()
	p.Release()
	// A promised struct holding capabilities, as an argument.
	q := Go1[pairOut](ctx, c, "boxes", 3)
	if v, err := Call1[int](ctx, c, "readPair", q); err != nil || v != 34 {
		t.Fatalf("readPair(promise) = %d, %v", v, err)
	}
	q.Release()
	// One field of it, pipelined.
	q2 := Go1[pairIn](ctx, c, "boxes", 5)
	fb := PipelineRef(Field[*Ref](q2, "B"))
	if v, err := Call0[int](ctx, fb, "get"); err != nil || v != 6 {
		t.Fatalf("get on a promised field = %d, %v", v, err)
	}
	fb.Close()
	q2.Release()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "every promised capability to be released")

	// Released before it resolves: the export goes once the answer comes.
	slow := PipelineRef(Go1[*Ref](ctx, c, "slowCounter", 1))
	pending := Go1[int](ctx, slow, "inc", 1)
	slow.Close()
	close(gate)
	if v, err := pending.Wait(); err != nil || v != 2 {
		t.Fatalf("call pipelined before the release: %d %v", v, err)
	}
	pending.Release()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "a capability released before it resolved to be freed")

	// A promised capability whose call fails: calls on it, and calls that
	// pass it, fail with that error.
	bad := PipelineRef(Go1[*Ref](ctx, c, "counter", "nan"))
	defer bad.Close()
	if _, err := Call1[int](ctx, bad, "inc", 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("call on a broken promised capability: %v", err)
	}
	if _, err := Call1[int](ctx, c, "read", bad); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("passing a broken promised capability: %v", err)
	}
}

// A nil, zero or closed Ref is FailedPrecondition on every path: as the
// target of every kind of call, and passed as an argument, alone or
// inside a struct.
func TestUnusableReferences(t *testing.T) {
	srv := NewServer()
	Handle1(srv, "counter", func(ctx context.Context, start int) (*Service, error) { return counter(start), nil })
	Handle1(srv, "take", func(ctx context.Context, p pairIn) (int, error) { return 0, nil })
	Handle1(srv, "takeRef", func(ctx context.Context, r *Ref) (int, error) { return 0, nil })
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	closed, err := Call1[*Ref](ctx, c, "counter", 1)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	closedPipe := PipelineRef(Go1[*Ref](ctx, c, "counter", 1))
	closedPipe.Close()
	closedLocal := holder("h", 1).Ref()
	closedLocal.Close()
	var zero Ref
	refs := map[string]*Ref{"nil": nil, "zero": &zero, "new": new(Ref), "closed": closed, "closed pipelined": closedPipe, "closed local": closedLocal}
	svc := holder("arg", 1)
	for name, r := range refs {
		paths := map[string]func() error{
			"Call0":      func() error { _, err := Call0[int](ctx, r, "get"); return err },
			"Call1(svc)": func() error { _, err := Call1[int](ctx, r, "inc", svc); return err },
			"Call2":      func() error { _, err := Call2[int](ctx, r, "inc", 1, pairOut{A: svc, B: svc}); return err },
			"Go1":        func() error { _, err := Go1[int](ctx, r, "inc", 1).Wait(); return err },
			"CallAny":    func() error { _, err := CallAny(ctx, r, "inc", 1); return err },
			"CallRaw":    func() error { _, err := CallRaw(ctx, r, "inc", []byte{0x91, 1}); return err },
			"ServerStream": func() error {
				_, err := CallServerStream[int](ctx, r, "watch", 1)
				return err
			},
			"ClientStream": func() error { _, err := OpenClientStream[int, int](ctx, r, "sum"); return err },
			"BidiStream":   func() error { _, err := OpenBidiStream[int, int](ctx, r, "chat"); return err },
			"PipelineRef": func() error {
				_, err := Call0[int](ctx, PipelineRef(Go0[*Ref](ctx, r, "child")), "get")
				return err
			},
			"as argument":  func() error { _, err := Call1[int](ctx, c, "takeRef", r); return err },
			"in a struct":  func() error { _, err := Call1[int](ctx, c, "take", pairIn{A: r, B: r}); return err },
			"to a promise": func() error { _, err := Go1[int](ctx, c, "takeRef", r).Wait(); return err },
		}
		for path, call := range paths {
			err := call()
			if name == "nil" && (path == "as argument" || path == "in a struct" || path == "to a promise") {
				// A nil *Ref argument is no capability, like a nil pointer.
				if err != nil {
					t.Errorf("nil reference %s: %v", path, err)
				}
				continue
			}
			if !errors.Is(err, ErrFailedPrecondition) {
				t.Errorf("%s reference, %s: %v, want FailedPrecondition", name, path, err)
			}
		}
	}
	// Nothing of it reached the server as a half-made capability.
	if v, err := Call1[int](ctx, c, "takeRef", holder("ok", 1)); err != nil || v != 0 {
		t.Fatalf("a usable argument after the failures: %v", err)
	}
	// A capability where a struct of them is expected names the field.
	if _, err := Call1[int](ctx, c, "take", map[string]int{"A": 1}); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "field A") {
		t.Fatalf("an int where a capability is expected: %v", err)
	}
}

// capArgs encodes [{"A": cap(a), "B": cap(b)}], a pairIn argument.
func capArgs(a, b uint64) []byte {
	p := value.AppendArrayHeader(nil, 1)
	p = value.AppendMapHeader(p, 2)
	p = value.AppendString(p, "A")
	p = value.AppendExt(p, wire.CapabilityExt, binary.AppendUvarint(nil, a))
	p = value.AppendString(p, "B")
	return value.AppendExt(p, wire.CapabilityExt, binary.AppendUvarint(nil, b))
}

// A peer that lies in its capability tables gets InvalidArgument, naming
// what was wrong, and the tables stay intact: an index out of range, an
// export of this side that does not exist or is another connection's, a
// promised capability of a later call, a release of more than it holds.
func TestCapabilityTableAbuse(t *testing.T) {
	srv := NewServer()
	Handle1(srv, "counter", func(ctx context.Context, start int) (*Service, error) { return counter(start), nil })
	Handle1(srv, "take", func(ctx context.Context, p pairIn) (int, error) {
		defer p.A.Close()
		defer p.B.Close()
		return Call1[int](ctx, p.A, "inc", 0)
	})
	c1, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	keep, err := Call1[*Ref](ctx, c1, "counter", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	sc1 := <-conns
	// A second client, with an export of its own on its connection.
	c2, err := Dial(ctx, c1.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	other, err := Call1[*Ref](ctx, c2, "counter", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	sc2 := <-conns
	other2, err := Call1[*Ref](ctx, c2, "counter", 200) // export 2 there, and none on c1's connection
	if err != nil {
		t.Fatal(err)
	}
	defer other2.Close()
	raw := c1.cur.Load()
	forge := func(caps []wire.CapDescriptor, args []byte) error {
		rep, err := raw.Call(ctx, &conn.Outgoing{Function: "take", Args: args, Caps: caps})
		if err == nil {
			rep.Release()
			return nil
		}
		return fromStatus(err)
	}
	mine := wire.CapDescriptor{Kind: wire.CapReceiverHosted, ID: keep.target.ID}
	cases := []struct {
		name string
		caps []wire.CapDescriptor
		args []byte
		want string
	}{
		{"index out of range", []wire.CapDescriptor{mine}, capArgs(0, 5), "capability index 5 out of range: the message holds 1"},
		{"no table", nil, capArgs(0, 0), "capability index 0 out of range"},
		{"unknown export", []wire.CapDescriptor{mine, {Kind: wire.CapReceiverHosted, ID: 999}}, capArgs(0, 1), "capability 999 is not an export of this side"},
		{"another connection's export", []wire.CapDescriptor{mine, {Kind: wire.CapReceiverHosted, ID: other2.target.ID}}, capArgs(0, 1), "capability 2 is not an export of this side"},
		{"later answer", []wire.CapDescriptor{mine, {Kind: wire.CapReceiverAnswer, ID: 1 << 40}}, capArgs(0, 1), "not an earlier call"},
		{"unknown answer", []wire.CapDescriptor{mine, {Kind: wire.CapReceiverAnswer, ID: 1}}, capArgs(0, 1), "capability 1"},
	}
	for _, tc := range cases {
		err := forge(tc.caps, tc.args)
		if !errors.Is(err, ErrInvalidArgument) && !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument naming %q", tc.name, err, tc.want)
		}
	}
	// The tables are intact: the well-formed call works, and each
	// connection still exports exactly its one counter.
	if err := forge([]wire.CapDescriptor{mine}, capArgs(0, 0)); err != nil {
		t.Fatalf("well-formed call: %v", err)
	}
	if exportsOn(sc1) != 1 || exportsOn(sc2) != 2 {
		t.Fatalf("exports %d and %d, want 1 and 2", exportsOn(sc1), exportsOn(sc2))
	}
	// A release of more than the peer holds frees that export, and
	// nothing else.
	raw.ReleaseExport(keep.target.ID, 1000)
	waitFor(t, func() bool { return exportsOn(sc1) == 0 }, "the over-released export to go")
	if _, err := Call1[int](ctx, keep, "inc", 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("call on the over-released export: %v", err)
	}
	if v, err := Call1[int](ctx, other, "inc", 1); err != nil || v != 101 {
		t.Fatalf("the other connection's export: %d %v", v, err)
	}
	r, err := Call1[*Ref](ctx, c1, "counter", 1)
	if err != nil {
		t.Fatalf("a new export after the abuse: %v", err)
	}
	r.Close()
}

// Calls pipelined on many promised capabilities, one after the other,
// leave no per-target state behind on either layer once the promises are
// released.
func TestPipelinedTargetsAreForgotten(t *testing.T) {
	srv := NewServer()
	Handle1(srv, "counter", func(ctx context.Context, start int) (*Service, error) { return counter(start), nil })
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	var sc *conn.Conn
	for i := 0; i < 300; i++ {
		p := Go1[*Ref](ctx, c, "counter", i)
		r := PipelineRef(p)
		if v, err := Call1[int](ctx, r, "inc", 1); err != nil || v != i+1 {
			t.Fatalf("iteration %d: %d %v", i, v, err)
		}
		if sc == nil {
			sc = <-conns
		}
		r.Close()
		if direct, err := p.Wait(); err == nil {
			direct.Close()
		}
		p.Release()
	}
	tab := capsOf(sc)
	waitFor(t, func() bool {
		tab.mu.Lock()
		defer tab.mu.Unlock()
		return len(tab.seqs) == 0 && len(tab.answerSeqs) == 0 && len(tab.exports) == 0
	}, "the per-target state of released answers to go")
	if n := sc.Targets(); n != 0 {
		t.Fatalf("the connection still tickets %d targets", n)
	}
}

// The bootstrap service comes in one call, or pipelined with none; a
// server without one says so; one made per call is a session per client.
func TestBootstrap(t *testing.T) {
	ctx := ctx10(t)
	c, _ := serveCaps(t, NewServer())
	if _, err := c.Bootstrap(ctx); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "WithBootstrap") {
		t.Fatalf("bootstrap of a server without one: %v", err)
	}
	var sessions atomic.Int32
	srv := NewServer(WithBootstrapFunc(func(ctx context.Context) (*Service, error) {
		return counter(int(sessions.Add(1)) * 100), nil
	}))
	c2, conns := serveCaps(t, srv)
	main, err := c2.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer main.Close()
	if v, err := Call1[int](ctx, main, "inc", 1); err != nil || v != 101 {
		t.Fatalf("first session: %d %v", v, err)
	}
	// Pipelined: calls on it are sent before it arrives.
	pipe := PipelineRef(Go0[*Ref](ctx, c2, BootstrapFunction))
	defer pipe.Close()
	if v, err := Call1[int](ctx, pipe, "inc", 2); err != nil || v != 202 {
		t.Fatalf("pipelined second session: %d %v", v, err)
	}
	sc := <-conns
	shared := holder("shared", 5)
	c3, _ := serveCaps(t, NewServer(WithBootstrap(shared)))
	a, err := c3.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c3.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.target.ID != b.target.ID {
		t.Fatalf("one shared service came back as two exports: %v %v", a.target, b.target)
	}
	a.Close()
	b.Close()
	main.Close()
	pipe.Close()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the sessions to be released")
}

// OnRelease runs when the last peer reference goes, by release or by the
// connection closing, so a service can close what it holds.
func TestServiceOnRelease(t *testing.T) {
	released := make(chan string, 4)
	srv := NewServer()
	Handle1(srv, "make", func(ctx context.Context, name string) (*Service, error) {
		return holder(name, 1).OnRelease(func() { released <- name }), nil
	})
	c, _ := serveCaps(t, srv)
	ctx := ctx10(t)
	a, err := Call1[*Ref](ctx, c, "make", "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Call1[*Ref](ctx, c, "make", "b") // never closed: the connection's close releases it
	if err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-released:
		t.Fatalf("%s released while referenced", n)
	case <-time.After(50 * time.Millisecond):
	}
	a.Close()
	if n := <-released; n != "a" {
		t.Fatalf("released %s, want a", n)
	}
	c.Close()
	select {
	case n := <-released:
		if n != "b" {
			t.Fatalf("released %s, want b", n)
		}
	case <-ctx.Done():
		t.Fatal("closing the connection did not release b")
	}
	runtime.KeepAlive(b)
}

// A reference passed back to its exporter and released right after the
// call is sent (the RELEASE frame right behind the CALL) is found by that
// call however late its handler decodes it: the call pins the export from
// its arrival until it ends, and the export goes then.
func TestReleaseRightAfterPassingBack(t *testing.T) {
	srv := NewServer(WithInterceptors(func(next CallFunc) CallFunc {
		return func(ctx context.Context, req *Request) (*Response, error) {
			if req.ID == "hold" { // decode late: after the RELEASE has been read
				time.Sleep(30 * time.Millisecond)
			}
			return next(ctx, req)
		}
	}))
	Handle1(srv, "box", func(ctx context.Context, v int) (*Service, error) { return holder("box", v), nil })
	Handle1(srv, "hold", func(ctx context.Context, r *Ref) (int, error) {
		defer r.Close()
		if r.local == nil {
			return 0, Errorf(Internal, "not the local object")
		}
		return Call0[int](ctx, r, "get")
	})
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	sc := <-conns
	for i := range 5 {
		ref, err := Call1[*Ref](ctx, c, "box", i)
		if err != nil {
			t.Fatal(err)
		}
		p := Go1[int](ctx, c, "hold", ref)
		ref.Close() // RELEASE, queued after the CALL
		if v, err := p.Wait(); err != nil || v != i {
			t.Fatalf("round %d: a call whose argument was released after sending: %d, %v", i, v, err)
		}
	}
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the boxes to be released once their calls ended")
}

// A promised capability passed back to its exporter and released right
// behind the call, before the answer it names is in, is found by that
// call when the answer comes: the call pins the answer from its arrival
// (the reader reads the RELEASE before the call's worker looks the answer
// up), and answer and export go when it ends.
func TestReleasePromisedCapabilityRightAfterPassingBack(t *testing.T) {
	srv := NewServer()
	gate := make(chan struct{})
	Handle1(srv, "slowBox", func(ctx context.Context, v int) (*Service, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return holder("box", v), nil
	})
	Handle1(srv, "hold", func(ctx context.Context, r *Ref) (int, error) {
		defer r.Close()
		if r.local == nil {
			return 0, Errorf(Internal, "not the local object")
		}
		return Call0[int](ctx, r, "get")
	})
	Handle0(srv, "ping", func(ctx context.Context) (int, error) { return 1, nil })
	c, conns := serveCaps(t, srv)
	ctx := ctx10(t)
	sc := <-conns
	p := Go1[*Ref](ctx, c, "slowBox", 7)
	box := PipelineRef(p)
	held := Go1[int](ctx, c, "hold", box)
	box.Close()
	p.Release() // RELEASE, right behind the CALL
	// The server reads frames in order: once ping is answered, it has
	// read the RELEASE, and only then does the answer come.
	if _, err := Call0[int](ctx, c, "ping"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	if v, err := held.Wait(); err != nil || v != 7 {
		t.Fatalf("a call passing a promised capability released after sending: %d, %v", v, err)
	}
	held.Release()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the box to be released once its call ended")
}

// Promised capabilities passed back lengthen a promise chain as promise
// arguments do (each link waits for the one before): the server's bound
// refuses the link over it, and the links after, by name.
func TestPromisedCapabilityChainLimit(t *testing.T) {
	chainServer := func(opts ...ServerOption) *Server {
		srv := NewServer(opts...)
		Handle1(srv, "wrap", func(ctx context.Context, r *Ref) (*Service, error) {
			defer r.Close()
			return holder("w", 1), nil
		})
		Handle1(srv, "box", func(ctx context.Context, v int) (*Service, error) { return holder("box", v), nil })
		return srv
	}
	c, _ := serveCaps(t, chainServer(WithLimits(Limits{MaxPromiseChain: 5})))
	ctx := ctx10(t)
	var ps []*Promise[*Ref]
	var refs []*Ref
	defer func() {
		for i := range ps {
			refs[i].Close()
			ps[i].Release()
		}
	}()
	link := func(p *Promise[*Ref]) *Ref {
		ps, refs = append(ps, p), append(refs, PipelineRef(p))
		return refs[len(refs)-1]
	}
	r := link(Go1[*Ref](ctx, c, "box", 1)) // link 1
	for range 7 {
		r = link(Go1[*Ref](ctx, c, "wrap", r)) // links 2..8
	}
	if _, err := ps[4].Wait(); err != nil {
		t.Fatalf("link 5 of a chain bounded at 5: %v", err)
	}
	for _, i := range []int{5, 7} {
		if _, err := ps[i].Wait(); !errors.Is(err, ErrResourceExhausted) || !strings.Contains(err.Error(), fmt.Sprintf("promise chain of %d calls", i+1)) {
			t.Fatalf("link %d of a chain bounded at 5: %v", i+1, err)
		}
	}

	// A client with the lower bound refuses the link over it before
	// sending it.
	c2, _ := serveCaps(t, chainServer(), WithConfig(Config{MaxPromiseChain: 3}))
	r = link(Go1[*Ref](ctx, c2, "box", 1))
	for range 2 {
		r = link(Go1[*Ref](ctx, c2, "wrap", r))
	}
	if _, err := ps[len(ps)-1].Wait(); err != nil {
		t.Fatalf("link 3 of a chain the client bounds at 3: %v", err)
	}
	over := Go1[*Ref](ctx, c2, "wrap", r)
	if _, err := over.Wait(); !errors.Is(err, ErrResourceExhausted) || !strings.Contains(err.Error(), "Config.MaxPromiseChain") {
		t.Fatalf("link 4 of a chain the client bounds at 3: %v", err)
	}
}
