package arbor

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// counter is a service with state: each call appends to its log.
func counter(start int) *Service {
	var mu sync.Mutex
	n := start
	var log []int
	svc := NewService("counter").Serialized() // its log records the call order
	Handle1(svc, "inc", func(ctx context.Context, d int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		n += d
		log = append(log, d)
		return n, nil
	})
	Handle0(svc, "log", func(ctx context.Context) ([]int, error) {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), log...), nil
	})
	return svc
}

type capFixture struct {
	c       *Client
	srvConn chan *conn.Conn
	pushed  chan int
}

func capServer(t *testing.T) *capFixture {
	t.Helper()
	f := &capFixture{srvConn: make(chan *conn.Conn, 16), pushed: make(chan int, 16)}
	srv := NewServer()
	if err := Handle1(srv, "newCounter", func(ctx context.Context, start int) (*Service, error) {
		f.srvConn <- conn.FromContext(ctx)
		return counter(start), nil
	}); err != nil {
		t.Fatal(err)
	}
	hub := NewService("hub")
	Handle1(hub, "subscribe", func(ctx context.Context, sink *Ref) (bool, error) {
		defer sink.Close()
		// Call back into the client's object over the same connection.
		for i := 1; i <= 3; i++ {
			if _, err := Call1[bool](ctx, sink, "push", i*10); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	Handle0(srv, "hub", func(ctx context.Context) (*Service, error) { return hub, nil })
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.c, err = Dial(context.Background(), l.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.c.Close(); srv.Close() })
	return f
}

func TestCapabilityCalls(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	ref, err := Call1[*Ref](ctx, f.c, "newCounter", 100)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-f.srvConn
	for i, want := range []int{101, 103, 106} {
		if got, err := Call1[int](ctx, ref, "inc", i+1); err != nil || got != want {
			t.Fatalf("inc %d: %d %v", i+1, got, err)
		}
	}
	if _, err := Call0[int](ctx, ref, "nope"); !errors.Is(err, ErrUnimplemented) || !errors.Is(err, ErrUnknownMethod) || !strings.Contains(err.Error(), `no method "nope"`) {
		t.Fatalf("unknown method: %v", err)
	}
	if n := exportsOn(sc); n != 1 {
		t.Fatalf("%d exports, want 1", n)
	}
	ref.Close()
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the export to be released")
	if _, err := Call1[int](ctx, ref, "inc", 1); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("call on a closed reference: %v", err)
	}
	// A forged call on a released export gets a clear error.
	rep, err := ref.cc.Call(ctx, &conn.Outgoing{Function: "inc", Target: &wire.Target{Kind: wire.TargetExport, ID: 1},
		Args: value.AppendInt(value.AppendArrayHeader(nil, 1), 1)})
	err = fromStatus(err)
	if err == nil {
		rep.Release()
		t.Fatal("call on a released export succeeded")
	}
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "capability 1 is unknown or released") {
		t.Fatalf("released export: %v", err)
	}
}

// Calls made in order on one reference run in that order, even when sent
// without waiting.
func TestCapabilityEOrder(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	ref, err := Call1[*Ref](ctx, f.c, "newCounter", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	const n = 200
	var asyncs []*conn.Async
	for i := 1; i <= n; i++ {
		a, err := ref.cc.Go(ctx, &conn.Outgoing{Function: "inc", Target: &ref.target, Args: value.AppendInt(value.AppendArrayHeader(nil, 1), int64(i))})
		if err != nil {
			t.Fatal(err)
		}
		asyncs = append(asyncs, a)
	}
	for _, a := range asyncs {
		if _, err := a.Result(); err != nil {
			t.Fatal(err)
		}
	}
	log, err := Call0[[]int](ctx, ref, "log")
	if err != nil || len(log) != n {
		t.Fatalf("log: %d entries, %v", len(log), err)
	}
	for i, v := range log {
		if v != i+1 {
			t.Fatalf("call %d ran in position %d: order lost", v, i)
		}
	}
}

func TestCallbacks(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	hub, err := Call0[*Ref](ctx, f.c, "hub")
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	sink := NewService("sink")
	Handle1(sink, "push", func(ctx context.Context, v int) (bool, error) { f.pushed <- v; return true, nil })
	if ok, err := Call1[bool](ctx, hub, "subscribe", sink); err != nil || !ok {
		t.Fatalf("subscribe: %v %v", ok, err)
	}
	for _, want := range []int{10, 20, 30} {
		if got := <-f.pushed; got != want {
			t.Fatalf("callback got %d, want %d", got, want)
		}
	}
	// The server released its reference to the client's sink.
	cc := f.c.cur.Load()
	waitFor(t, func() bool { return exportsOn(cc) == 0 }, "the client's export to be released")
	if _, err := Call1[bool](ctx, f.c, "newCounter", sink); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("service as a plain call argument: %v", err)
	}
}

func TestDroppedRefIsReleased(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	func() {
		if _, err := Call1[*Ref](ctx, f.c, "newCounter", 1); err != nil {
			t.Fatal(err)
		}
	}()
	sc := <-f.srvConn
	waitFor(t, func() bool { runtime.GC(); return exportsOn(sc) == 0 }, "the dropped reference to be released")
}

func TestExportLimit(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	r1, err := Call1[*Ref](ctx, f.c, "newCounter", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	sc := <-f.srvConn
	capsOf(sc).limit = 1
	if _, err := Call1[*Ref](ctx, f.c, "newCounter", 2); !errors.Is(err, ErrResourceExhausted) || !strings.Contains(err.Error(), "limit 1") {
		t.Fatalf("over the export limit: %v", err)
	}
}

func TestExportsDieWithConnection(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	if _, err := Call1[*Ref](ctx, f.c, "newCounter", 1); err != nil {
		t.Fatal(err)
	}
	sc := <-f.srvConn
	f.c.Close()
	<-sc.Done()
	// The tables are dropped by ConnClosed, which runs on a goroutine of
	// its own once the connection is done.
	waitFor(t, func() bool { return exportsOn(sc) == 0 }, "the closed connection's exports to be dropped")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(v uint64) string {
	b := []byte{}
	if v == 0 {
		return "0"
	}
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// Calls on a capability that does not exist yet are sent at once and run
// in order when it does.
func TestPromisedCapability(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	p := Go1[*Ref](ctx, f.c, "newCounter", 100)
	r := PipelineRef(p)
	var qs []*Promise[int]
	for i := 1; i <= 20; i++ {
		qs = append(qs, Go1[int](ctx, r, "inc", i))
	}
	sum := 100
	for i, q := range qs {
		sum += i + 1
		if got, err := q.Wait(); err != nil || got != sum {
			t.Fatalf("call %d: %d %v, want %d", i+1, got, err, sum)
		}
	}
	// After the capability resolved, calls through the same reference
	// still line up behind the earlier ones.
	direct, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	log, err := Call0[[]int](ctx, direct, "log")
	if err != nil || len(log) != 20 || log[0] != 1 || log[19] != 20 {
		t.Fatalf("log %v %v", log, err)
	}
	direct.Close()
	r.Close()
	// A promised capability of a failed call fails its method calls.
	bad := PipelineRef(Go1[*Ref](ctx, f.c, "newCounter", "not a number"))
	if _, err := Go1[int](ctx, bad, "inc", 1).Wait(); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("call on a failed promised capability: %v", err)
	}
}

func TestCapabilityEdgeCases(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	// A promise as the argument of a method call.
	ref, err := Call1[*Ref](ctx, f.c, "newCounter", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	sc := <-f.srvConn
	p := Go1[int](ctx, f.c, "double", 21) // unknown function: the dependent fails with its error
	if _, err := Go1[int](ctx, ref, "inc", p).Wait(); !errors.Is(err, ErrUnimplemented) {
		t.Fatalf("promise argument of a failed call: %v", err)
	}
	srvAdd := Go0[*Ref](ctx, f.c, "hub")
	// A promised capability where an int is wanted: a clear argument error.
	if _, err := Go1[int](ctx, ref, "inc", Go1[*Ref](ctx, f.c, "newCounter", 1)).Wait(); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "argument 0") {
		t.Fatalf("promised server capability as an argument: %v", err)
	}
	<-f.srvConn
	// A reference passed back reaches its exporter as a capability: where
	// an int is wanted, that is a clear argument error.
	if _, err := Call1[int](ctx, ref, "inc", ref); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "argument 0") {
		t.Fatalf("reference as an argument: %v", err)
	}
	// Wait twice gives the same reference; closing it and the pipelined
	// one (which holds the answer) releases the capability.
	r1, err1 := srvAdd.Wait()
	r2, err2 := srvAdd.Wait()
	if err1 != nil || err2 != nil || r1 != r2 {
		t.Fatalf("Wait twice: %p %p %v %v", r1, r2, err1, err2)
	}
	before := exportsOn(sc)
	PipelineRef(srvAdd).Close()
	r1.Close()
	waitFor(t, func() bool { return exportsOn(sc) < before }, "the pipelined capability to be released")
}

// Releases are exact: back-to-back calls on promised capabilities do not
// starve releases of other answers.
func TestReleasesNotStarved(t *testing.T) {
	srv := NewServer(WithLimits(Limits{MaxRetainedAnswers: 20}))
	Handle1(srv, "newCounter", func(ctx context.Context, start int) (*Service, error) { return counter(start), nil })
	Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(context.Background(), l.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	r := PipelineRef(Go1[*Ref](ctx, c, "newCounter", 0))
	defer r.Close()
	var last *Promise[int]
	for i := 0; i < 500; i++ {
		q := Go1[int](ctx, r, "inc", 1) // keeps a call on @p running most of the time
		p := Go2[int](ctx, c, "add", i, 1)
		if _, err := p.Wait(); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		p.Release()
		if last != nil {
			last.Wait()
			last.Release()
		}
		last = q
	}
}

// A call on a reference that fails before running (a failed promise
// argument), or times out waiting its turn, does not stall the calls
// behind it; a PipelineRef of a failed promise reports the failure.
func TestSequencerNeverStalls(t *testing.T) {
	f := capServer(t)
	ctx := context.Background()
	ref, err := Call1[*Ref](ctx, f.c, "newCounter", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	<-f.srvConn
	bad := Go1[int](ctx, f.c, "nosuchfn", 1)
	if _, err := Go1[int](ctx, ref, "inc", bad).Wait(); !errors.Is(err, ErrUnimplemented) {
		t.Fatalf("failed promise argument: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if v, err := Call1[int](tctx, ref, "inc", 5); err != nil || v != 5 {
		t.Fatalf("the next call on the reference: %d %v", v, err)
	}

	closed, err := Dial(ctx, f.c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	failed := PipelineRef(Go1[*Ref](ctx, closed, "newCounter", 1))
	if _, err := Call1[int](ctx, failed, "inc", 1); err == nil {
		t.Fatal("call on a failed PipelineRef succeeded")
	}
	failed.Close() // no panic
}
