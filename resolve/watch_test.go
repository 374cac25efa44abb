package resolve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// nextEvent reads one event or fails the test after a few seconds.
func nextEvent(t *testing.T, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ev
}

func TestSubscribeSeesEveryTransition(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	sub := e.Subscribe(SubscribeOptions{})
	defer sub.Close()

	tree := request.New("add", request.New("slow", 1), 2).WithTitle("sum")
	id, err := e.Submit(testContext(t), tree)
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, sub)
	if ev.Kind != EventSubmitted || ev.Tree != id || ev.Status == nil || ev.Status.Title != "sum" || len(ev.Status.Subrequests) != 1 {
		t.Fatalf("first event %+v, want the submission with the whole status tree", ev)
	}
	<-b.started
	close(b.release)
	// Per path, the states seen, in order.
	seen := map[string][]State{}
	for {
		ev := nextEvent(t, sub)
		if ev.Tree != id {
			t.Fatalf("event of tree %q, want %q", ev.Tree, id)
		}
		if ev.Kind == EventDone {
			if ev.Err != "" {
				t.Fatalf("tree failed: %s", ev.Err)
			}
			break
		}
		if ev.Kind != EventNode || ev.Status == nil || len(ev.Status.Subrequests) != 0 {
			t.Fatalf("event %+v, want a node event without subrequests", ev)
		}
		seen[ev.Status.Path] = append(seen[ev.Status.Path], ev.Status.State)
	}
	want := map[string][]State{
		"request":             {SubrequestsRunning, Running, Finished},
		"args.tuple_element0": {Running, Finished},
	}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("transitions %v, want %v", seen, want)
	}
	if err := e.Release(id); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, sub); ev.Kind != EventDropped || ev.Tree != id {
		t.Errorf("after Release: %+v, want dropped", ev)
	}
}

func TestSubscribeFiltersByTree(t *testing.T) {
	e := newEngine(t, Config{})
	ctx := testContext(t)
	id1, err := e.Submit(ctx, request.New("add", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	<-mustDone(t, e, id1)
	sub := e.Subscribe(SubscribeOptions{Tree: "not-yet"})
	defer sub.Close()
	id2, err := e.Submit(ctx, request.New("add", 3, 4))
	if err != nil {
		t.Fatal(err)
	}
	<-mustDone(t, e, id2)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if ev, err := sub.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("subscription to another tree got %+v, %v", ev, err)
	}
}

func mustDone(t *testing.T, e *Engine, id string) <-chan struct{} {
	t.Helper()
	ch, err := e.Done(id)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// A reader that does not read loses events, counted, and never holds up
// the engine.
func TestSubscribeBoundedAndNonBlocking(t *testing.T) {
	e := newEngine(t, Config{})
	sub := e.Subscribe(SubscribeOptions{Buffer: 4})
	defer sub.Close()
	ctx := testContext(t)
	for i := range 20 {
		id, err := e.Submit(ctx, request.New("add", request.New("num", i), 1))
		if err != nil {
			t.Fatal(err)
		}
		<-mustDone(t, e, id) // would hang if publishing waited for the reader
	}
	var got int
	var missed uint64
	for {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		ev, err := sub.Next(short)
		cancel()
		if err != nil {
			break
		}
		got++
		missed += ev.Missed
	}
	if got != 4 || missed == 0 {
		t.Errorf("read %d events with %d missed, want the 4 buffered and a count of the rest", got, missed)
	}
}

func TestSubscriptionEndsWithEngine(t *testing.T) {
	e, err := New(Config{Catalog: testCatalog()})
	if err != nil {
		t.Fatal(err)
	}
	sub := e.Subscribe(SubscribeOptions{})
	id, err := e.Submit(testContext(t), request.New("add", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	<-mustDone(t, e, id)
	e.Close()
	n := 0
	for {
		_, err := sub.Next(testContext(t))
		if errors.Is(err, ErrSubscriptionClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Error("events held before Close were lost")
	}
	if _, err := e.Subscribe(SubscribeOptions{}).Next(testContext(t)); !errors.Is(err, ErrSubscriptionClosed) {
		t.Errorf("Subscribe on a closed engine: %v", err)
	}
}

func TestTreesListsNewestFirst(t *testing.T) {
	e := newEngine(t, Config{})
	ctx := testContext(t)
	var ids []string
	for i := range 3 {
		id, err := e.Submit(ctx, request.New("add", i, 1).WithTitle(fmt.Sprint("t", i)))
		if err != nil {
			t.Fatal(err)
		}
		<-mustDone(t, e, id)
		ids = append(ids, id)
		time.Sleep(2 * time.Millisecond) // distinct submission times
	}
	trees := e.Trees()
	if len(trees) != 3 || trees[0].ID != ids[2] || trees[2].ID != ids[0] {
		t.Fatalf("Trees() = %+v, want the 3 trees newest first", trees)
	}
	if trees[0].Title != "t2" || trees[0].State != Finished || trees[0].Finished.IsZero() || trees[0].UUID != "add" {
		t.Errorf("newest %+v", trees[0])
	}
}

// recorder is an Observer that writes down what it sees.
type recorder struct {
	mu      sync.Mutex
	events  []string
	ctxSeen bool
}

type recKey struct{}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) TreeStarted(ctx context.Context, async bool) { r.add("tree start async=%v", async) }
func (r *recorder) TreeEnded(ctx context.Context, async bool, err error) {
	r.add("tree end async=%v err=%v", async, err != nil)
}
func (r *recorder) NodeStarted(ctx context.Context, n *NodeInfo) context.Context {
	r.add("start %s %s %s", n.Path, n.ID, n.Level)
	return context.WithValue(ctx, recKey{}, n.Path)
}
func (r *recorder) NodeEnded(ctx context.Context, n *NodeInfo, err error) {
	if ctx.Value(recKey{}) != n.Path {
		r.add("end %s: wrong context", n.Path)
		return
	}
	r.add("end %s err=%v", n.Path, err != nil)
}
func (r *recorder) CacheLookup(ctx context.Context, level request.Level, tier string, hit bool) {
	r.add("lookup %v %s %s hit=%v", ctx.Value(recKey{}), level, tier, hit)
}
func (r *recorder) Joined(ctx context.Context, level request.Level) { r.add("joined %s", level) }
func (r *recorder) Retried(ctx context.Context, id string)          { r.add("retry %s", id) }

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

func TestObserverSeesNodesLookupsAndRetries(t *testing.T) {
	cat := testCatalog()
	var flaky int
	cat["flaky"] = intFunc(1, func(ctx context.Context, xs []int64) (int64, error) {
		if flaky++; flaky == 1 {
			return 0, &status.Error{Code: status.Unavailable, Retryable: true, Message: "once"}
		}
		return xs[0], nil
	})
	cat["flaky"] = Func{Invoker: cat["flaky"].Invoker, Args: cat["flaky"].Args, Retry: RetryPolicy{MaxAttempts: 2}}
	disk, err := cache.OpenDisk(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e := newEngine(t, Config{Catalog: cat, Secondary: disk, Observer: rec})

	resolveInt(t, e, request.New("add+full", request.New("flaky", 1), 2))
	want := []string{
		"tree start async=false",
		"start request add+full full",
		"lookup request full memory hit=false",
		"lookup request full disk hit=false",
		"start args.tuple_element0 flaky none",
		"retry flaky",
		"end args.tuple_element0 err=false",
		"end request err=false",
		"tree end async=false err=false",
	}
	if got := rec.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("first resolution:\n got %q\nwant %q", got, want)
	}
	resolveInt(t, e, request.New("add+full", request.New("flaky", 1), 2))
	want = []string{
		"tree start async=false",
		"start request add+full full",
		"lookup request full memory hit=true",
		"end request err=false",
		"tree end async=false err=false",
	}
	if got := rec.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cached resolution:\n got %q\nwant %q", got, want)
	}
	if _, err := e.Resolve(testContext(t), request.New("nosuch", 1)); err == nil {
		t.Fatal("unknown function resolved")
	}
	if got := rec.take(); len(got) != 4 || got[2] != "end request err=true" || got[3] != "tree end async=false err=true" {
		t.Errorf("failed resolution: %q", got)
	}
}

func TestObserverSeesJoins(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow+mem"] = b.fn(1)
	rec := &recorder{}
	e := newEngine(t, Config{Catalog: cat, Observer: rec})
	ctx := testContext(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.Resolve(ctx, request.New("slow+mem", 1)) }()
	<-b.started
	wg.Add(1)
	go func() { defer wg.Done(); e.Resolve(ctx, request.New("slow+mem", 1)) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Deduplicated == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(b.release)
	wg.Wait()
	joins := 0
	for _, ev := range rec.take() {
		if ev == "joined mem" {
			joins++
		}
	}
	if joins != 1 {
		t.Errorf("%d joins observed, want 1", joins)
	}
}
