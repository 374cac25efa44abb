package resolve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/value"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 20 * time.Second

func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// intFunc makes a Func over int64 arguments.
func intFunc(arity int, f func(ctx context.Context, xs []int64) (int64, error)) Func {
	types := make([]string, arity)
	for i := range types {
		types[i] = "int"
	}
	return Func{
		Args:   types,
		Result: "int",
		Invoker: InvokerFunc(func(ctx context.Context, args []byte) ([]byte, error) {
			r := value.NewReader(args)
			n, err := r.ReadArrayHeader()
			if err != nil || n != arity {
				return nil, status.Errorf(status.InvalidArgument, "want %d arguments", arity)
			}
			xs := make([]int64, n)
			for i := range xs {
				if xs[i], err = r.ReadInt(); err != nil {
					return nil, status.Errorf(status.InvalidArgument, "argument %d (int): %v", i, err)
				}
			}
			res, err := f(ctx, xs)
			if err != nil {
				return nil, err
			}
			return value.AppendInt(nil, res), nil
		}),
	}
}

func add(_ context.Context, xs []int64) (int64, error) {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s, nil
}

// testCatalog has add, num (identity) and slow ones at every level.
func testCatalog() MapCatalog {
	m := MapCatalog{}
	for _, lvl := range []string{"", "+none", "+mem", "+full", "+mem_vb", "+full_vb"} {
		m["add"+lvl] = intFunc(2, add)
		m["num"+lvl] = intFunc(1, add)
	}
	return m
}

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Catalog == nil {
		cfg.Catalog = testCatalog()
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func resolveInt(t testing.TB, e *Engine, n *request.Node) int64 {
	t.Helper()
	res, err := e.Resolve(testContext(t), n)
	if err != nil {
		t.Fatalf("Resolve(%v): %v", n, err)
	}
	r := value.NewReader(res)
	v, err := r.ReadInt()
	if err != nil {
		t.Fatalf("result %x: %v", res, err)
	}
	return v
}

func TestResolveTree(t *testing.T) {
	e := newEngine(t, Config{})
	tree := request.New("add", request.New("add", 1, 2), request.New("num", request.New("add", 3, request.New("num", 4))))
	if got := resolveInt(t, e, tree); got != 10 {
		t.Fatalf("got %d, want 10", got)
	}
	if e.Calls("add") != 3 || e.Calls("num") != 2 {
		t.Errorf("calls add=%d num=%d", e.Calls("add"), e.Calls("num"))
	}
}

func TestLevelNone(t *testing.T) {
	e := newEngine(t, Config{})
	for range 3 {
		resolveInt(t, e, request.New("add", 1, 2))
		resolveInt(t, e, request.New("add+none", 1, 2))
	}
	if e.Calls("add") != 3 || e.Calls("add+none") != 3 {
		t.Errorf("calls add=%d add+none=%d, want 3 each", e.Calls("add"), e.Calls("add+none"))
	}
}

func TestLevelMem(t *testing.T) {
	e := newEngine(t, Config{})
	for range 3 {
		if got := resolveInt(t, e, request.New("add+mem", request.New("num", 1), 2)); got != 3 {
			t.Fatal(got)
		}
	}
	if e.Calls("add+mem") != 1 || e.Calls("num") != 1 {
		t.Errorf("calls add+mem=%d num=%d, want 1 each (a hit does not resolve subrequests)", e.Calls("add+mem"), e.Calls("num"))
	}
	resolveInt(t, e, request.New("add+mem", request.New("num", 1), 3))
	if e.Calls("add+mem") != 2 {
		t.Errorf("other arguments: calls = %d, want 2", e.Calls("add+mem"))
	}
	// mem never goes to the secondary cache
	st := e.Stats()
	if st.MemoryHits != 2 || st.Misses != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestLevelFullSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *Engine {
		d, err := cache.OpenDisk(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(Config{Catalog: testCatalog(), Memory: cache.NewMemory(1 << 20), Secondary: d})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	tree := request.New("add+full", request.New("num+mem", 20), 22)
	e1 := open()
	for range 2 {
		if got := resolveInt(t, e1, tree); got != 42 {
			t.Fatal(got)
		}
	}
	// mem results are not on disk
	resolveInt(t, e1, request.New("add+mem", 1, 1))
	if e1.Calls("add+full") != 1 {
		t.Fatalf("first process: calls = %d", e1.Calls("add+full"))
	}
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := open()
	defer e2.Close()
	if got := resolveInt(t, e2, tree); got != 42 {
		t.Fatal(got)
	}
	if e2.Calls("add+full") != 0 || e2.Calls("num+mem") != 0 {
		t.Errorf("after restart: add+full ran %d, num+mem %d times; want 0", e2.Calls("add+full"), e2.Calls("num+mem"))
	}
	resolveInt(t, e2, request.New("add+mem", 1, 1))
	if e2.Calls("add+mem") != 1 {
		t.Errorf("mem result survived a restart")
	}
	st := e2.Stats()
	if st.SecondaryHits != 1 || st.Secondary == nil || st.Secondary.Hits != 1 {
		t.Errorf("stats %+v / %+v", st, st.Secondary)
	}
	// now promoted to memory
	resolveInt(t, e2, tree)
	if st := e2.Stats(); st.MemoryHits != 1 {
		t.Errorf("not promoted: %+v", st)
	}
}

func TestLevelValueBased(t *testing.T) {
	for _, lvl := range []string{"+mem_vb", "+full_vb"} {
		t.Run(lvl, func(t *testing.T) {
			e := newEngine(t, Config{Secondary: cache.NewMemory(1 << 20)})
			id := "add" + lvl
			// Different requests, same resolved values: one run.
			for _, tree := range []*request.Node{
				request.New(id, request.New("num", 1), 2),
				request.New(id, request.New("add", 0, 1), 2),
				request.New(id, 1, 2),
				request.New(id, request.New("num+mem", 1), request.New("num", 2)),
			} {
				if got := resolveInt(t, e, tree); got != 3 {
					t.Fatal(got)
				}
			}
			if e.Calls(id) != 1 {
				t.Errorf("%s ran %d times for one distinct value set, want 1", id, e.Calls(id))
			}
			// The subrequests themselves ran every time (they are none).
			if e.Calls("num") != 2 || e.Calls("add") != 1 {
				t.Errorf("num %d add %d", e.Calls("num"), e.Calls("add"))
			}
			resolveInt(t, e, request.New(id, request.New("num", 2), 2))
			if e.Calls(id) != 2 {
				t.Errorf("new values: %d runs, want 2", e.Calls(id))
			}
		})
	}
}

func TestFullVBSecondary(t *testing.T) {
	sec := cache.NewMemory(1 << 20)
	e := newEngine(t, Config{Secondary: sec})
	resolveInt(t, e, request.New("add+full_vb", request.New("num", 1), 2))
	resolveInt(t, e, request.New("add+mem_vb", request.New("num", 1), 2))
	if s := sec.Stats(); s.Puts != 1 {
		t.Errorf("secondary puts = %d, want 1 (full_vb only)", s.Puts)
	}
}

// blocker is a function that blocks until released, counting runs and
// the runs in progress.
type blocker struct {
	runs    atomic.Int64
	running atomic.Int64
	peak    atomic.Int64
	release chan struct{}
	started chan struct{}
	ctxErr  chan error
}

func newBlocker() *blocker {
	return &blocker{release: make(chan struct{}), started: make(chan struct{}, 1000), ctxErr: make(chan error, 1000)}
}

func (b *blocker) fn(arity int) Func {
	return intFunc(arity, func(ctx context.Context, xs []int64) (int64, error) {
		b.runs.Add(1)
		n := b.running.Add(1)
		defer b.running.Add(-1)
		for {
			p := b.peak.Load()
			if n <= p || b.peak.CompareAndSwap(p, n) {
				break
			}
		}
		b.started <- struct{}{}
		select {
		case <-b.release:
			return add(ctx, xs)
		case <-ctx.Done():
			b.ctxErr <- ctx.Err()
			return 0, status.New(status.Canceled, "blocker: cancelled")
		}
	})
}

func TestConcurrentIdenticalRunOnce(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow+mem"] = b.fn(1)
	cat["slow+full_vb"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	ctx := testContext(t)
	for _, id := range []string{"slow+mem", "slow+full_vb"} {
		b.runs.Store(0)
		b.release = make(chan struct{})
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.Resolve(ctx, request.New(id, request.New("num", 7)))
				if err == nil && len(res) != 1 {
					err = fmt.Errorf("result %x", res)
				}
				errs <- err
			}()
		}
		<-b.started
		time.Sleep(20 * time.Millisecond) // let the others join
		close(b.release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := b.runs.Load(); got != 1 {
			t.Errorf("%s: %d concurrent identical requests ran %d times, want 1", id, n, got)
		}
	}
	if e.Stats().Deduplicated == 0 {
		t.Error("no deduplication counted")
	}
}

func TestIdenticalSubrequestsInOneTree(t *testing.T) {
	b := newBlocker()
	close(b.release)
	cat := testCatalog()
	cat["sq+mem"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	tree := request.New("add", request.New("sq+mem", 3), request.New("sq+mem", 3))
	if got := resolveInt(t, e, tree); got != 6 {
		t.Fatal(got)
	}
	if b.runs.Load() != 1 {
		t.Errorf("identical subrequests ran %d times", b.runs.Load())
	}
}

func TestLeaderLeavesFollowerGetsResult(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow+mem"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	ctx := testContext(t)
	lctx, cancelLeader := context.WithCancel(ctx)
	leader := make(chan error, 1)
	go func() {
		_, err := e.Resolve(lctx, request.New("slow+mem", 1))
		leader <- err
	}()
	<-b.started
	follower := make(chan error, 1)
	go func() {
		_, err := e.Resolve(ctx, request.New("slow+mem", 1))
		follower <- err
	}()
	for e.Stats().Deduplicated == 0 {
		time.Sleep(time.Millisecond)
	}
	cancelLeader()
	if err := <-leader; status.CodeOf(err) != status.Canceled {
		t.Fatalf("leader: %v", err)
	}
	close(b.release)
	if err := <-follower; err != nil {
		t.Fatalf("follower: %v", err)
	}
	if b.runs.Load() != 1 {
		t.Errorf("runs %d", b.runs.Load())
	}
}

func TestCancelReachesHandler(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	cat["slow+mem"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	for _, id := range []string{"slow", "slow+mem"} {
		ctx, cancel := context.WithCancel(testContext(t))
		done := make(chan error, 1)
		go func() {
			_, err := e.Resolve(ctx, request.New("add", request.New(id, 1), 2))
			done <- err
		}()
		<-b.started
		cancel()
		if err := <-b.ctxErr; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: handler saw %v", id, err)
		}
		// The error names the node that was cancelled, whether the
		// handler's own error or the context's arrived first (a caller
		// waiting on a shared run leaves it at once).
		if err := <-done; status.CodeOf(err) != status.Canceled || !strings.Contains(err.Error(), "args.tuple_element0 ("+id+")") {
			t.Errorf("%s: Resolve returned %v", id, err)
		}
	}
}

func TestConcurrencyBound(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	for _, bound := range []int{1, 3} {
		b.peak.Store(0)
		b.release = make(chan struct{})
		e := newEngine(t, Config{Catalog: cat, Concurrency: bound})
		args := make([]any, 2)
		subs := func() *request.Node {
			xs := make([]any, 2)
			for i := range xs {
				xs[i] = request.New("slow", i)
			}
			return request.New("add", xs...)
		}
		args[0], args[1] = subs(), subs()
		done := make(chan error, 1)
		go func() {
			_, err := e.Resolve(testContext(t), request.New("add", args...))
			done <- err
		}()
		// wait until the engine has started as many as it may
		<-b.started
		time.Sleep(30 * time.Millisecond)
		close(b.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if p := b.peak.Load(); p > int64(bound) || (bound > 1 && p < 2) {
			t.Errorf("Concurrency %d: peak %d functions at once", bound, p)
		}
	}
}

func TestErrorsCarryPath(t *testing.T) {
	cat := testCatalog()
	cat["boom"] = intFunc(1, func(context.Context, []int64) (int64, error) {
		return 0, &status.Error{Code: status.FailedPrecondition, Message: "boom!", Details: []byte("d")}
	})
	e := newEngine(t, Config{Catalog: cat})
	ctx := testContext(t)
	for _, tc := range []struct {
		tree *request.Node
		code status.Code
		want []string
	}{
		{request.New("add", 1, 2, request.New("nope", 1)), status.InvalidArgument, []string{"request (add): add takes 2 argument(s) (int, int), got 3"}},
		{request.New("add", 1, request.New("add", request.New("uuid_404", 1), 2)), status.NotFound,
			[]string{"args.tuple_element1.args.tuple_element0 (uuid_404)", `unknown function "uuid_404"`}},
		{request.New("add", 1, request.New("add", "x", 2)), status.InvalidArgument, []string{"args.tuple_element1 (add)", "argument 0 (int)"}},
		{request.New("add", request.New("boom", 1), 2), status.FailedPrecondition, []string{"args.tuple_element0 (boom): boom!"}},
	} {
		_, err := e.Resolve(ctx, tc.tree)
		if status.CodeOf(err) != tc.code {
			t.Errorf("%v: err %v, want code %v", tc.tree, err, tc.code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("err %q lacks %q", err, w)
			}
		}
	}
	_, err := e.Resolve(ctx, request.New("boom", 1))
	var se *status.Error
	if !errors.As(err, &se) || string(se.Details) != "d" {
		t.Errorf("details lost: %#v", err)
	}
	if errors.Is(status.FromError(err), status.ErrUnknownMethod) {
		t.Error("wrong category")
	}
	_, err = e.Resolve(ctx, request.New("zzz"))
	if !errors.Is(err, status.ErrUnknownMethod) {
		t.Errorf("unknown function is not ErrUnknownMethod: %v", err)
	}
}

func TestLimits(t *testing.T) {
	e := newEngine(t, Config{Limits: request.Limits{MaxDepth: 3, MaxNodes: 4}})
	ctx := testContext(t)
	if _, err := e.Resolve(ctx, request.New("num", request.New("num", request.New("num", 1)))); err != nil {
		t.Fatal(err)
	}
	_, err := e.Resolve(ctx, request.New("num", request.New("num", request.New("num", request.New("num", 1)))))
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "deeper than 3") {
		t.Errorf("depth: %v", err)
	}
	_, err = e.Resolve(ctx, request.New("add", request.New("add", request.New("num", 1), request.New("num", 1)), request.New("num", 1)))
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "more than 4") {
		t.Errorf("nodes: %v", err)
	}
	cyc := request.New("num", 1)
	cyc.Args[0] = request.Sub(cyc)
	if _, err := e.Resolve(ctx, cyc); status.CodeOf(err) != status.InvalidArgument {
		t.Errorf("cycle: %v", err)
	}
}

func TestRetry(t *testing.T) {
	var fails atomic.Int64
	flaky := func(retryable bool) Func {
		return intFunc(1, func(_ context.Context, xs []int64) (int64, error) {
			if fails.Add(-1) >= 0 {
				return 0, &status.Error{Code: status.Unavailable, Message: "flaky", Retryable: retryable}
			}
			return xs[0], nil
		})
	}
	cat := testCatalog()
	cat["flaky"] = flaky(true)
	f := cat["flaky"]
	f.Retry = RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond}
	cat["flaky"] = f
	cat["fatal"] = flaky(false)
	f = cat["fatal"]
	f.Retry = RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond}
	cat["fatal"] = f
	e := newEngine(t, Config{Catalog: cat, MaxAttempts: 5})
	ctx := testContext(t)

	fails.Store(2)
	begin := time.Now()
	if got := resolveInt(t, e, request.New("flaky", 5)); got != 5 {
		t.Fatal(got)
	}
	if e.Calls("flaky") != 3 {
		t.Errorf("flaky ran %d times, want 3", e.Calls("flaky"))
	}
	if d := time.Since(begin); d < 3*time.Millisecond {
		t.Errorf("backoff 1ms+2ms took only %v", d)
	}
	fails.Store(10)
	_, err := e.Resolve(ctx, request.New("flaky", 5))
	if status.CodeOf(err) != status.Unavailable || e.Calls("flaky") != 7 {
		t.Errorf("exhausted: %v after %d runs", err, e.Calls("flaky")-3)
	}
	fails.Store(1)
	if _, err := e.Resolve(ctx, request.New("fatal", 5)); err == nil || e.Calls("fatal") != 1 {
		t.Errorf("non-retryable error retried: %v, %d runs", err, e.Calls("fatal"))
	}
	// A request's hint overrides the policy, capped by MaxAttempts.
	fails.Store(100)
	n := request.New("flaky", 5)
	n.Retry = request.RetryHint{BaseMillis: 0, MaxAttempts: 50}
	before := e.Calls("flaky")
	e.Resolve(ctx, n)
	if got := e.Calls("flaky") - before; got != 5 {
		t.Errorf("hint: %d runs, want 5 (the engine's cap)", got)
	}
	if st := e.Stats(); st.Retries == 0 {
		t.Error("no retries counted")
	}
	// Cancelling during the backoff ends at once.
	f = cat["flaky"]
	fails.Store(100)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	slowRetry := request.New("flaky", 5)
	slowRetry.Retry = request.RetryHint{BaseMillis: 60_000, MaxAttempts: 3}
	begin = time.Now()
	_, err = e.Resolve(cctx, slowRetry)
	if status.CodeOf(err) != status.DeadlineExceeded || time.Since(begin) > 5*time.Second {
		t.Errorf("cancel during backoff: %v after %v", err, time.Since(begin))
	}
}

// failingCache fails every operation.
type failingCache struct{ cache.Cache }

func (failingCache) Get(context.Context, cache.Key) ([]byte, bool, error) {
	return nil, false, errors.New("disk on fire")
}
func (failingCache) Put(context.Context, cache.Key, []byte) error { return errors.New("disk on fire") }
func (failingCache) Stats() cache.Stats                           { return cache.Stats{} }
func (failingCache) Close() error                                 { return nil }

func TestCacheErrorsAreMisses(t *testing.T) {
	e := newEngine(t, Config{Secondary: failingCache{}})
	for range 2 {
		if got := resolveInt(t, e, request.New("add+full", 1, 2)); got != 3 {
			t.Fatal(got)
		}
	}
	st := e.Stats()
	if st.CacheErrors != 2 || e.Calls("add+full") != 1 {
		t.Errorf("stats %+v, runs %d", st, e.Calls("add+full"))
	}
}

func TestClosed(t *testing.T) {
	e := newEngine(t, Config{})
	e.Close()
	if _, err := e.Resolve(testContext(t), request.New("add", 1, 2)); status.CodeOf(err) != status.Unavailable {
		t.Errorf("Resolve after Close: %v", err)
	}
	if _, err := e.Submit(testContext(t), request.New("add", 1, 2)); status.CodeOf(err) != status.Unavailable {
		t.Errorf("Submit after Close: %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a catalog")
	}
}

func TestAuthorizeSeesCachedRequests(t *testing.T) {
	deny := false
	e := newEngine(t, Config{Authorize: func(ctx context.Context, id string) error {
		if deny && id == "num+mem" {
			return status.Errorf(status.PermissionDenied, "no %s for you", id)
		}
		return nil
	}})
	tree := request.New("add", 1, request.New("num+mem", 2))
	resolveInt(t, e, tree)
	deny = true
	_, err := e.Resolve(testContext(t), tree)
	if status.CodeOf(err) != status.PermissionDenied || !strings.Contains(err.Error(), "args.tuple_element1 (num+mem): no num+mem for you") {
		t.Errorf("cached request not authorized: %v", err)
	}
	if _, ok := e.MemoryHit(testContext(t), "num+mem", 1, request.New("num+mem", 2).Key()); ok {
		t.Error("MemoryHit bypassed Authorize")
	}
}
