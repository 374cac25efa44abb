package tree_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/internal/demo"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/tree"
)

// treeServer is a server with the demo catalog and resolution enabled,
// listening on TCP loopback, and a client for it.
type treeServer struct {
	srv    *arbor.Server
	engine *resolve.Engine
	c      *arbor.Client
	served chan error
}

type treeServerOpts struct {
	cacheDir string // "" : no secondary cache
	config   tree.Config
	options  []arbor.ServerOption
	register func(*arbor.Server) error // more functions, registered before serving
}

func startTreeServer(t testing.TB, o treeServerOpts) *treeServer {
	t.Helper()
	ctx := testContext(t)
	srv := arbor.NewServer(o.options...)
	if err := demo.Register(srv); err != nil {
		t.Fatal(err)
	}
	if o.register != nil {
		if err := o.register(srv); err != nil {
			t.Fatal(err)
		}
	}
	cfg := o.config
	if o.cacheDir != "" {
		d, err := cache.OpenDisk(o.cacheDir, 0)
		if err != nil {
			t.Fatal(err)
		}
		cfg.SecondaryCache = d
	}
	e, err := tree.Enable(srv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := transport.Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := &treeServer{srv: srv, engine: e, served: make(chan error, 1)}
	go func() { ts.served <- srv.Serve(l) }()
	ts.c, err = arbor.Dial(ctx, l.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.stop)
	return ts
}

// stop closes client, server and engine (idempotent).
func (ts *treeServer) stop() {
	if ts.srv == nil {
		return
	}
	ts.c.Close()
	ts.srv.Close()
	<-ts.served
	ts.engine.Close()
	ts.srv = nil
}

func (ts *treeServer) calls(t testing.TB, id string) int64 {
	t.Helper()
	fs, err := tree.Catalog(testContext(t), ts.c)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.ID == id {
			return f.Calls
		}
	}
	t.Fatalf("%s not in the resolve catalog", id)
	return 0
}

func TestResolveSeedExampleVerbatim(t *testing.T) {
	ts := startTreeServer(t, treeServerOpts{})
	ctx := testContext(t)
	seed, err := os.ReadFile("../request/testdata/seed_example.json")
	if err != nil {
		t.Fatal(err)
	}
	res, err := tree.ResolveJSON(ctx, ts.c, seed)
	if err != nil {
		t.Fatal(err)
	}
	want := demo.ObjectID("string", []byte("payload"))
	if got, err := request.AppendValueJSON(nil, res); err != nil || string(got) != `"`+want+`"` {
		t.Fatalf("result %s (%v), want %q", got, err, want)
	}
	blob, err := arbor.Call1[[]byte](ctx, ts.c, demo.GetISSObjectID, want)
	if err != nil || string(blob) != "payload" {
		t.Fatalf("stored object = %q, %v", blob, err)
	}
	// The same tree built in Go, typed result; "+full" caches it.
	tr := request.New(demo.PostISSObjectID, "123", "string",
		request.New(demo.MakeBlobID, demo.Payload{Value0: "payload"}).WithTitle("make_blob_coro")).WithTitle("post_iss_object")
	id, err := tree.Resolve[string](ctx, ts.c, tr)
	if err != nil || id != want {
		t.Fatalf("Resolve = %q, %v", id, err)
	}
	if n := ts.calls(t, demo.PostISSObjectID); n != 1 {
		t.Errorf("post_iss_object ran %d times, want 1 (the second was a cache hit)", n)
	}
	fs, err := tree.Catalog(ctx, ts.c)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if strings.HasPrefix(f.ID, "arbor.") {
			t.Errorf("built-in %s is resolvable", f.ID)
		}
		if f.ID == demo.PostISSObjectID && (f.Title != "post_iss_object" || f.Level != "full" || len(f.Args) != 3) {
			t.Errorf("catalog entry %+v", f)
		}
	}
}

func TestResolveLevelsByCallCounters(t *testing.T) {
	ts := startTreeServer(t, treeServerOpts{cacheDir: t.TempDir()})
	ctx := testContext(t)
	for _, lvl := range demo.Levels {
		id := "math_add+" + lvl
		for i := range 3 {
			// Different requests with the same resolved values: (2, 3)
			// once as literals, then with a subrequest giving 3.
			var tr *request.Node
			if i == 0 {
				tr = request.New(id, 2, 3)
			} else {
				tr = request.New(id, 2, request.New("add", 1, 2))
			}
			sum, err := tree.Resolve[int](ctx, ts.c, tr)
			if err != nil || sum != 5 {
				t.Fatalf("%s: %d, %v", id, sum, err)
			}
		}
	}
	want := map[string]int64{
		"math_add+none":    3,
		"math_add+mem":     2, // the literal request, then the one with a subrequest
		"math_add+full":    2,
		"math_add+mem_vb":  1, // once per distinct resolved values
		"math_add+full_vb": 1,
	}
	for id, n := range want {
		if got := ts.calls(t, id); got != n {
			t.Errorf("%s ran %d times, want %d", id, got, n)
		}
	}
	st, err := tree.Stats(ctx, ts.c)
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryHits == 0 || st.Memory.Entries == 0 || st.Secondary == nil || st.Secondary.Puts != 3 || st.Calls["math_add+none"] == 0 {
		t.Errorf("stats %+v, secondary %+v", st, st.Secondary)
	}
}

func TestResolveFullOnceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	tr := request.New("math_mul+full", request.New("math_add+mem", 2, 4), 7)
	mem := request.New("math_mul+mem", 6, 7)
	for round := range 2 {
		ts := startTreeServer(t, treeServerOpts{cacheDir: dir})
		ctx := testContext(t)
		for range 2 {
			for _, n := range []*request.Node{tr, mem} {
				if got, err := tree.Resolve[int](ctx, ts.c, n); err != nil || got != 42 {
					t.Fatalf("round %d: %d, %v", round, got, err)
				}
			}
		}
		wantFull := int64(1 - round) // runs in the first process only
		if got := ts.calls(t, "math_mul+full"); got != wantFull {
			t.Errorf("round %d: math_mul+full ran %d times, want %d", round, got, wantFull)
		}
		if got := ts.calls(t, "math_mul+mem"); got != 1 {
			t.Errorf("round %d: math_mul+mem ran %d times, want 1 (memory only, per process)", round, got)
		}
		ts.stop()
	}
}

func TestResolveConcurrentIdenticalOnce(t *testing.T) {
	ts := startTreeServer(t, treeServerOpts{})
	ctx := testContext(t)
	tr := request.New("math_add+mem", request.New("sleep", 100), 1)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := tree.Resolve[int](ctx, ts.c, tr)
			if err == nil && got != 101 {
				err = errors.New("wrong sum")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := ts.calls(t, "math_add+mem"); got != 1 {
		t.Errorf("math_add+mem ran %d times for %d concurrent identical requests", got, n)
	}
	if got := ts.calls(t, "sleep"); got != 1 {
		t.Errorf("its subrequest ran %d times", got)
	}
}

func TestResolveBadInput(t *testing.T) {
	ts := startTreeServer(t, treeServerOpts{config: tree.Config{Limits: request.Limits{MaxDepth: 8, MaxNodes: 50}}})
	ctx := testContext(t)
	deep := `{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":` + strings.Repeat(`{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":`, 9) + `1` + strings.Repeat(`}}`, 10)
	for _, tc := range []struct {
		name, json string
		code       arbor.Code
		want       []string
	}{
		{"unknown uuid", `{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":{"uuid":"uuid_404","args":{}}}}`,
			arbor.NotFound, []string{`args.tuple_element1 (uuid_404): unknown function "uuid_404"`}},
		{"malformed", `{"uuid":"math_add+none","args":{"tuple_element0":1,}}`, arbor.InvalidArgument, []string{"malformed JSON", "at byte 51"}},
		{"arity", `{"uuid":"math_add+none","args":{"tuple_element0":{"uuid":"math_mul+none","args":{"tuple_element0":1}}, "tuple_element1":2}}`,
			arbor.InvalidArgument, []string{"args.tuple_element0 (math_mul+none)", "takes 2 argument(s) (int, int), got 1"}},
		{"type", `{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":{"uuid":"math_mul+none","args":{"tuple_element0":2,"tuple_element1":"x"}}}}`,
			arbor.InvalidArgument, []string{"args.tuple_element1 (math_mul+none)", "argument 1 (int)"}},
		{"subrequest type", `{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":{"uuid":"uuid_100_2","args":{"tuple_element0":{"value0":"p"}}}}}`,
			arbor.InvalidArgument, []string{"request (math_add+none)", "argument 1 (int)"}},
		{"depth", deep, arbor.InvalidArgument, []string{"nested deeper than 8"}},
		{"blob size", `{"uuid":"echo","args":{"tuple_element0":{"as_file":false,"size":4,"blob":"YWJj"}}}`,
			arbor.InvalidArgument, []string{"args.tuple_element0", "blob size 4 disagrees with its data (3 bytes)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tree.ResolveJSON(ctx, ts.c, []byte(tc.json))
			if arbor.CodeOf(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	// A raw call with a bad argument.
	if _, err := arbor.Call1[int](ctx, ts.c, tree.ResolveID, 5); arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Errorf("arbor.resolve(5) = %v", err)
	}
	if _, err := arbor.CallRaw(ctx, ts.c, tree.ResolveID, []byte{0x91, 0x93, 0xa1}); arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Errorf("truncated msgpack request = %v", err)
	}
	// Still serving.
	if sum, err := tree.Resolve[int](ctx, ts.c, request.New("math_add+none", 1, 2)); err != nil || sum != 3 {
		t.Fatalf("after bad input: %d, %v", sum, err)
	}
}

func TestSubmitStatusCancelOverWire(t *testing.T) {
	ts := startTreeServer(t, treeServerOpts{})
	ctx := testContext(t)
	tr := request.New("math_add+none", request.New("sleep", 10_000).WithTitle("long"), request.New("math_mul+mem", 2, 3))
	id, err := tree.Submit(ctx, ts.c, tr)
	if err != nil {
		t.Fatal(err)
	}
	var st *resolve.Status
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, err = tree.Status(ctx, ts.c, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Subrequests[0].State == resolve.Running && st.Subrequests[1].State == resolve.Finished {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.State != resolve.SubrequestsRunning || st.Subrequests[0].Title != "long" || st.Subrequests[0].Path != "args.tuple_element0" {
		t.Errorf("status %+v / %+v", st, st.Subrequests[0])
	}
	if err := tree.Cancel(ctx, ts.c, id, "args.tuple_element0"); err != nil {
		t.Fatal(err)
	}
	_, err = tree.Result[int](ctx, ts.c, id)
	// The cancelled node is named, whichever came first: sleep's own
	// error or the end of the context it was waited for in.
	if arbor.CodeOf(err) != arbor.Canceled || !strings.Contains(err.Error(), "args.tuple_element0 (sleep)") {
		t.Errorf("result after cancel: %v", err)
	}
	st, _ = tree.Status(ctx, ts.c, id)
	if st.Subrequests[0].State != resolve.Cancelled {
		t.Errorf("cancelled node %+v", st.Subrequests[0])
	}
	if err := tree.Release(ctx, ts.c, id); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.Status(ctx, ts.c, id); arbor.CodeOf(err) != arbor.NotFound {
		t.Errorf("status after release: %v", err)
	}
	// A tree that finishes, submitted as JSON.
	id, err = tree.SubmitJSON(ctx, ts.c, []byte(`{"uuid":"math_add+mem","args":{"tuple_element0":40,"tuple_element1":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tree.Result[int](ctx, ts.c, id); err != nil || got != 42 {
		t.Errorf("result %d, %v", got, err)
	}
}

func TestResolveRunsInterceptors(t *testing.T) {
	deny := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if req.ID == "math_mul+none" {
				return nil, arbor.Errorf(arbor.PermissionDenied, "%s is not for you", req.ID)
			}
			return next(ctx, req)
		}
	}
	ts := startTreeServer(t, treeServerOpts{options: []arbor.ServerOption{arbor.WithInterceptors(deny)}})
	ctx := testContext(t)
	_, err := tree.Resolve[int](ctx, ts.c, request.New("math_add+none", 1, request.New("math_mul+none", 2, 3)))
	if arbor.CodeOf(err) != arbor.PermissionDenied || !strings.Contains(err.Error(), "args.tuple_element1") {
		t.Errorf("err = %v, want PermissionDenied at args.tuple_element1", err)
	}
	if got, err := tree.Resolve[int](ctx, ts.c, request.New("math_add+none", 1, request.New("math_add+mem", 2, 3))); err != nil || got != 6 {
		t.Errorf("allowed tr: %d, %v", got, err)
	}
}

func TestEnableResolutionTwice(t *testing.T) {
	srv := arbor.NewServer()
	defer srv.Close()
	e, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := tree.Enable(srv, tree.Config{}); arbor.CodeOf(err) != arbor.AlreadyExists {
		t.Errorf("second EnableResolution: %v", err)
	}
}

func TestResolveAuthorize(t *testing.T) {
	auth := func(ctx context.Context, id string) error {
		if id == "math_mul+mem" && arbor.IncomingMetadata(ctx).Get("user") != "alice" {
			return arbor.Errorf(arbor.PermissionDenied, "%s is for alice", id)
		}
		return nil
	}
	ts := startTreeServer(t, treeServerOpts{config: tree.Config{Authorize: auth}})
	tr := request.New("math_add+none", 1, request.New("math_mul+mem", 2, 3))
	alice := arbor.WithMetadata(testContext(t), "user", "alice")
	if got, err := tree.Resolve[int](alice, ts.c, tr); err != nil || got != 7 {
		t.Fatalf("alice: %d, %v", got, err)
	}
	// Now cached: bob still may not have it.
	_, err := tree.Resolve[int](testContext(t), ts.c, tr)
	if arbor.CodeOf(err) != arbor.PermissionDenied || !strings.Contains(err.Error(), "args.tuple_element1") {
		t.Errorf("bob: %v", err)
	}
	_, err = tree.Resolve[int](testContext(t), ts.c, request.New("math_mul+mem", 2, 3))
	if arbor.CodeOf(err) != arbor.PermissionDenied {
		t.Errorf("bob, cached root: %v", err)
	}
}
