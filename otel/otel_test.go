package arborotel_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
	arborotel "github.com/arbor-rpc/arbor/otel"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// process is one traced "process": its tracer provider, exporter and
// Tracing.
type process struct {
	exp *tracetest.InMemoryExporter
	tp  *sdktrace.TracerProvider
	tr  *arborotel.Tracing
}

func newProcess(t testing.TB, sampler sdktrace.Sampler) *process {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return &process{exp: exp, tp: tp, tr: arborotel.New(arborotel.Config{TracerProvider: tp})}
}

// serve starts a traced server on TCP loopback; register adds its
// functions.
func serve(t testing.TB, p *process, register func(*arbor.Server)) string {
	t.Helper()
	srv := arbor.NewServer(arbor.WithObserver(p.tr.Observer()))
	register(srv)
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return l.URL()
}

func dial(t testing.TB, p *process, addr string) *arbor.Client {
	t.Helper()
	c, err := arbor.Dial(context.Background(), addr, arbor.WithObserver(p.tr.Observer()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func attr(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value, true
		}
	}
	return attribute.Value{}, false
}

func byName(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// A call through three processes is one trace: client → hop (which
// calls) → leaf, each span the child of the one before.
func TestTraceJoinsAcrossProcesses(t *testing.T) {
	client, mid, far := newProcess(t, sdktrace.AlwaysSample()), newProcess(t, sdktrace.ParentBased(sdktrace.NeverSample())), newProcess(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	leafAddr := serve(t, far, func(s *arbor.Server) {
		arbor.Handle1(s, "leaf", func(ctx context.Context, n int) (int, error) { return n + 1, nil })
	})
	var toLeaf *arbor.Client
	hopAddr := serve(t, mid, func(s *arbor.Server) {
		arbor.Handle1(s, "hop", func(ctx context.Context, n int) (int, error) {
			return arbor.Call1[int](ctx, toLeaf, "leaf", n)
		})
	})
	toLeaf = dial(t, mid, leafAddr)
	c := dial(t, client, hopAddr)
	ctx, root := client.tp.Tracer("test").Start(testContext(t), "root")
	if got, err := arbor.Call1[int](ctx, c, "hop", 1); err != nil || got != 2 {
		t.Fatalf("hop: %v %v", got, err)
	}
	root.End()

	cs, ms, fs := client.exp.GetSpans(), mid.exp.GetSpans(), far.exp.GetSpans()
	if len(cs) != 2 || len(ms) != 2 || len(fs) != 1 {
		t.Fatalf("spans: client %d, mid %d, far %d; want 2, 2, 1", len(cs), len(ms), len(fs))
	}
	tid := root.SpanContext().TraceID()
	for _, s := range append(append(append(tracetest.SpanStubs{}, cs...), ms...), fs...) {
		if s.SpanContext.TraceID() != tid {
			t.Errorf("span %s is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), tid)
		}
	}
	clientHop := byName(cs, "hop")[0]
	serverHop := byName(ms, "hop")[0]
	clientLeaf := byName(ms, "leaf")[0]
	serverLeaf := fs[0]
	chain := []struct {
		child, parent tracetest.SpanStub
	}{{clientHop, byName(cs, "root")[0]}, {serverHop, clientHop}, {clientLeaf, serverHop}, {serverLeaf, clientLeaf}}
	for _, l := range chain {
		if l.child.Parent.SpanID() != l.parent.SpanContext.SpanID() {
			t.Errorf("%s (%v) is not a child of %s (%v)", l.child.Name, l.child.SpanKind, l.parent.Name, l.parent.SpanKind)
		}
	}
	if clientHop.SpanKind != trace.SpanKindClient || serverHop.SpanKind != trace.SpanKindServer || !serverHop.Parent.IsRemote() {
		t.Errorf("kinds: %v %v remote=%v", clientHop.SpanKind, serverHop.SpanKind, serverHop.Parent.IsRemote())
	}
	if v, _ := attr(serverHop, arborotel.AttrMethod); v.AsString() != "hop" {
		t.Errorf("rpc.method = %q", v.AsString())
	}
	if v, _ := attr(serverHop, arborotel.AttrCode); v.AsString() != "OK" {
		t.Errorf("code = %q", v.AsString())
	}
}

func TestFailedCallSpansCarryTheError(t *testing.T) {
	p := newProcess(t, sdktrace.AlwaysSample())
	addr := serve(t, p, func(s *arbor.Server) {
		arbor.Handle0(s, "boom", func(ctx context.Context) (int, error) { return 0, arbor.Errorf(arbor.DataLoss, "disk on fire") })
	})
	c := dial(t, p, addr)
	if _, err := arbor.Call0[int](testContext(t), c, "boom"); arbor.CodeOf(err) != arbor.DataLoss {
		t.Fatal(err)
	}
	spans := p.exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	for _, s := range spans {
		v, _ := attr(s, arborotel.AttrCode)
		if s.Status.Code != codes.Error || v.AsString() != "DataLoss" {
			t.Errorf("%v span: status %v %q, code %q", s.SpanKind, s.Status.Code, s.Status.Description, v.AsString())
		}
	}
}

// A request tree is one trace: the call, the server's handling, and a
// span per request of the tree, marked cache hit or miss.
func TestTreeIsOneTrace(t *testing.T) {
	client, server := newProcess(t, sdktrace.AlwaysSample()), newProcess(t, sdktrace.ParentBased(sdktrace.NeverSample()))
	var srv *arbor.Server
	addr := serve(t, server, func(s *arbor.Server) {
		srv = s
		arbor.Handle2(s, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
		arbor.Handle2(s, "add+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	})
	e, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 1 << 20, Observer: server.tr.TreeObserver()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := dial(t, client, addr)
	n := request.New("add", request.New("add+mem", 1, 2), request.New("add", 3, 4))
	for i := range 2 {
		ctx, root := client.tp.Tracer("test").Start(testContext(t), fmt.Sprint("resolve ", i))
		if v, err := tree.Resolve[int](ctx, c, n); err != nil || v != 10 {
			t.Fatalf("resolve: %v %v", v, err)
		}
		root.End()
	}
	spans := server.exp.GetSpans()
	// Per resolution: the arbor.resolve handler and three requests.
	if len(spans) != 8 {
		for _, s := range spans {
			t.Logf("%s %v", s.Name, s.Attributes)
		}
		t.Fatalf("%d server spans, want 8", len(spans))
	}
	for i, tid := range []trace.TraceID{spans[0].SpanContext.TraceID(), spans[len(spans)-1].SpanContext.TraceID()} {
		var handler tracetest.SpanStub
		nodes := map[string]tracetest.SpanStub{}
		for _, s := range spans {
			if s.SpanContext.TraceID() != tid {
				continue
			}
			if s.Name == tree.ResolveID {
				handler = s
				continue
			}
			p, _ := attr(s, arborotel.AttrTreePath)
			nodes[p.AsString()] = s
		}
		root, cached, plain := nodes["request"], nodes["args.tuple_element0"], nodes["args.tuple_element1"]
		if handler.Name == "" || root.Name != "add" || cached.Name != "add+mem" || plain.Name != "add" {
			t.Fatalf("trace %d: handler %q, nodes %v", i, handler.Name, nodes)
		}
		if root.Parent.SpanID() != handler.SpanContext.SpanID() || cached.Parent.SpanID() != root.SpanContext.SpanID() || plain.Parent.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("trace %d: the request spans do not nest as the tree does", i)
		}
		hit, ok := attr(cached, arborotel.AttrCacheHit)
		if !ok || hit.AsBool() != (i == 1) {
			t.Errorf("resolution %d: the cached request is marked hit=%v (set %v), want %v", i, hit.AsBool(), ok, i == 1)
		}
		if _, ok := attr(plain, arborotel.AttrCacheHit); ok {
			t.Errorf("an uncached level is marked with a cache result")
		}
		if lvl, _ := attr(cached, arborotel.AttrTreeLevel); lvl.AsString() != "mem" {
			t.Errorf("level %q", lvl.AsString())
		}
	}
}

// An unsampled trace records nothing anywhere, but its context still
// reaches the handler, so that the handler's calls stay in it.
func TestUnsampledTraceRecordsNothing(t *testing.T) {
	client, server := newProcess(t, sdktrace.NeverSample()), newProcess(t, sdktrace.ParentBased(sdktrace.AlwaysSample()))
	seen := make(chan trace.SpanContext, 4)
	addr := serve(t, server, func(s *arbor.Server) {
		arbor.Handle0(s, "where", func(ctx context.Context) (int, error) {
			seen <- trace.SpanContextFromContext(ctx)
			return 1, nil
		})
	})
	c := dial(t, client, addr)
	// Two unsampled traces, their calls interleaved: each call carries
	// its own parent (the client keeps the last parent's metadata).
	ctx, root := client.tp.Tracer("test").Start(testContext(t), "unsampled")
	ctx2, root2 := client.tp.Tracer("test").Start(testContext(t), "unsampled too")
	for i := range 5 {
		cctx, want := ctx, root.SpanContext()
		if i%3 == 1 {
			cctx, want = ctx2, root2.SpanContext()
		}
		if _, err := arbor.Call0[int](cctx, c, "where"); err != nil {
			t.Fatal(err)
		}
		got := <-seen
		if got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() || got.IsSampled() || !got.IsRemote() {
			t.Errorf("call %d: the handler saw %v, want the caller's unsampled span %v", i, got, want)
		}
	}
	root2.End()
	// A call outside any span: the client's sampler decides (no), and the
	// server follows the decision it receives.
	if _, err := arbor.Call0[int](testContext(t), c, "where"); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; !got.IsValid() || got.IsSampled() {
		t.Errorf("a root call's handler saw %v, want a valid unsampled context", got)
	}
	root.End()
	if n := len(client.exp.GetSpans()) + len(server.exp.GetSpans()); n != 0 {
		t.Errorf("%d spans recorded for unsampled traces", n)
	}
}

func TestInterceptorsTraceInProcessCalls(t *testing.T) {
	p := newProcess(t, sdktrace.AlwaysSample())
	srv := arbor.NewServer(arbor.WithInterceptors(p.tr.ServerInterceptor()))
	defer srv.Close()
	arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	ctx, root := p.tp.Tracer("test").Start(testContext(t), "root")
	if _, err := srv.Invoke(ctx, "add", []byte{0x92, 0x01, 0x02}); err != nil {
		t.Fatal(err)
	}
	var sent []arbor.Pair
	caller := arbor.CallFunc(func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
		sent = req.Metadata
		return &arbor.Response{Result: []byte{0x01}}, nil
	})
	if _, err := arbor.Call0[int](ctx, p.tr.ClientInterceptor()(caller), "far"); err != nil {
		t.Fatal(err)
	}
	root.End()
	spans := p.exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3", len(spans))
	}
	add, far := byName(spans, "add"), byName(spans, "far")
	if len(add) != 1 || add[0].Parent.SpanID() != root.SpanContext().SpanID() || len(far) != 1 {
		t.Fatalf("spans %v", spans)
	}
	tp := arbor.Metadata(sent).Get(arborotel.TraceparentKey)
	want := fmt.Sprintf("00-%s-%s-01", root.SpanContext().TraceID(), far[0].SpanContext.SpanID())
	if tp != want {
		t.Errorf("traceparent %q, want %q", tp, want)
	}
}

// Span names are interned by function id in a small table whose slots
// ids of one length and first, middle and last bytes share: functions
// called in turn through one slot each get their own name, on both sides,
// however the server reuses the buffers the ids arrive in.
func TestSpanNamesOfCollidingFunctions(t *testing.T) {
	p := newProcess(t, sdktrace.AlwaysSample())
	ids := []string{"a1x2z", "a3x4z", "a5x6z"}
	addr := serve(t, p, func(s *arbor.Server) {
		for _, id := range ids {
			arbor.Handle0(s, id, func(ctx context.Context) (string, error) { return id, nil })
		}
	})
	c := dial(t, p, addr)
	for i := range 30 {
		if _, err := arbor.Call0[string](testContext(t), c, ids[i%len(ids)]); err != nil {
			t.Fatal(err)
		}
	}
	spans := p.exp.GetSpans()
	if len(spans) != 60 {
		t.Fatalf("%d spans, want 60", len(spans))
	}
	count := map[string]int{}
	for _, s := range spans {
		if v, _ := attr(s, arborotel.AttrMethod); v.AsString() != s.Name {
			t.Errorf("%v span %q has rpc.method %q", s.SpanKind, s.Name, v.AsString())
		}
		count[s.Name]++
	}
	for _, id := range ids {
		if count[id] != 20 {
			t.Errorf("%d spans named %s, want 20 (%v)", count[id], id, count)
		}
	}
}

// TestServerSpanStartsWhenTheCallArrived: under a sampled parent, the
// server's span starts at CallInfo.Start (the frame's arrival, where the
// server's metrics start too), not when the observer is called.
func TestServerSpanStartsWhenTheCallArrived(t *testing.T) {
	p := newProcess(t, sdktrace.AlwaysSample())
	obs := p.tr.Observer()
	ctx, parent := p.tp.Tracer("test").Start(context.Background(), "caller")
	out := &conn.CallInfo{Outgoing: true, Function: "f", Start: time.Now()}
	cctx := obs.CallStarted(ctx, out)
	const waited = 40 * time.Millisecond
	in := &conn.CallInfo{Function: "f", Metadata: out.Metadata, Start: time.Now().Add(-waited)}
	before := time.Now()
	sctx := obs.CallStarted(context.Background(), in)
	obs.CallEnded(sctx, in, nil)
	obs.CallEnded(cctx, out, nil)
	parent.End()
	var server []tracetest.SpanStub
	for _, s := range p.exp.GetSpans() {
		if s.SpanKind == trace.SpanKindServer {
			server = append(server, s)
		}
	}
	if len(server) != 1 {
		t.Fatalf("%d server spans, want 1", len(server))
	}
	if lead := before.Sub(server[0].StartTime); lead < waited-5*time.Millisecond || lead > waited+time.Second {
		t.Errorf("server span started %v before CallStarted, want about %v (CallInfo.Start)", lead, waited)
	}
	if server[0].SpanContext.TraceID() != parent.SpanContext().TraceID() {
		t.Errorf("server span is in trace %v, not the caller's %v", server[0].SpanContext.TraceID(), parent.SpanContext().TraceID())
	}
}

// keeper is an observer that keeps a value of its own for each call (as
// metrics does), taking a Keep slot.
type keeper struct{ conn.Observer }

func (keeper) CallStarted(ctx context.Context, info *conn.CallInfo) context.Context {
	info.Keep(1)
	return ctx
}
func (keeper) CallEnded(context.Context, *conn.CallInfo, error) {}

// The tracing observer ends its spans when combined past the Keep slots
// (the fifth of arbor.WithObserver's), where it finds them in the
// context, and when a wrapper of its own gives it another observer's
// slot.
func TestSpansEndWithoutAKeepSlot(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  func(p *process) []conn.Observer
	}{
		{"fifth", func(p *process) []conn.Observer {
			k := keeper{p.tr.Observer()} // its other methods do nothing
			return []conn.Observer{k, k, k, k, p.tr.Observer()}
		}},
		{"wrapped", func(p *process) []conn.Observer {
			return []conn.Observer{wrapper{[]conn.Observer{keeper{p.tr.Observer()}, p.tr.Observer()}}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProcess(t, sdktrace.AlwaysSample())
			srv := arbor.NewServer(arbor.WithObserver(tc.obs(p)...))
			arbor.Handle1(srv, "inc", func(ctx context.Context, n int) (int, error) { return n + 1, nil })
			l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c, err := arbor.Dial(context.Background(), l.URL(), arbor.WithObserver(tc.obs(p)...))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got, err := arbor.Call1[int](testContext(t), c, "inc", 1); err != nil || got != 2 {
				t.Fatalf("inc: %v %v", got, err)
			}
			spans := p.exp.GetSpans()
			if len(spans) != 2 {
				t.Fatalf("%d spans ended, want 2 (client and server)", len(spans))
			}
			for _, s := range spans {
				if v, _ := attr(s, arborotel.AttrCode); v.AsString() != "OK" {
					t.Errorf("%v span ended with code %q, want OK", s.SpanKind, v.AsString())
				}
			}
		})
	}
}

// wrapper combines observers on its own (not with conn.Observers): they
// share one Keep slot, the last one's Keep winning.
type wrapper struct{ list []conn.Observer }

func (w wrapper) ConnOpened(c *conn.Conn)          {}
func (w wrapper) ConnClosed(c *conn.Conn, e error) {}
func (w wrapper) CallStarted(ctx context.Context, info *conn.CallInfo) context.Context {
	for _, o := range w.list {
		ctx = o.CallStarted(ctx, info)
	}
	info.Keep(1) // the wrapper's own, over what its observers kept
	return ctx
}
func (w wrapper) CallEnded(ctx context.Context, info *conn.CallInfo, err error) {
	for _, o := range w.list {
		o.CallEnded(ctx, info, err)
	}
}
func (w wrapper) FlowStalled(c *conn.Conn, d time.Duration)               {}
func (w wrapper) GoAway(c *conn.Conn, sent bool, code uint32, msg string) {}

// TestClientInterceptorSpansFollowPromises: ClientInterceptor's span of
// a promise ends when the answer arrives, with its outcome, not when
// the call was sent (Response.OnEnd).
func TestClientInterceptorSpansFollowPromises(t *testing.T) {
	p := newProcess(t, sdktrace.AlwaysSample())
	gate := make(chan error)
	addr := serve(t, newProcess(t, sdktrace.NeverSample()), func(srv *arbor.Server) {
		arbor.Handle0(srv, "gated", func(ctx context.Context) (int, error) { return 1, <-gate })
	})
	c, err := arbor.Dial(context.Background(), addr, arbor.WithInterceptors(p.tr.ClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pr := arbor.Go0[int](testContext(t), c, "gated")
	time.Sleep(20 * time.Millisecond)
	if n := len(p.exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans ended while the promise awaits its answer", n)
	}
	gate <- arbor.NewError(arbor.Aborted, "no")
	if _, err := pr.Wait(); arbor.CodeOf(err) != arbor.Aborted {
		t.Fatalf("Wait: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); len(p.exp.GetSpans()) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the promise's span never ended")
		}
	}
	s := p.exp.GetSpans()[0]
	if code, _ := attr(s, arborotel.AttrCode); s.Name != "gated" || s.Status.Code != codes.Error || code.AsString() != "Aborted" {
		t.Errorf("span %s: status %v, code %q; want gated, Error, Aborted", s.Name, s.Status, code.AsString())
	}
}
