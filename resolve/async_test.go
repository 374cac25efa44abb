package resolve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// waitState polls the tree until the node at idx reaches s.
func waitState(t *testing.T, e *Engine, id string, s State, idx ...int) *Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := e.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		n := st
		for _, i := range idx {
			n = n.Subrequests[i]
		}
		if n.State == s {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %v is %v, want %v", idx, n.State, s)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSubmitStatusResult(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	ctx := testContext(t)
	resolveInt(t, e, request.New("num+mem", 5)) // cached beforehand
	tree := request.New("add", request.New("slow", 1).WithTitle("the slow one"), request.New("num+mem", 5)).WithTitle("sum")
	id, err := e.Submit(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	<-b.started
	st := waitState(t, e, id, Finished, 1)
	if st.State != SubrequestsRunning || st.UUID != "add" || st.Title != "sum" || st.Path != "request" {
		t.Errorf("root %+v", st)
	}
	s0, s1 := st.Subrequests[0], st.Subrequests[1]
	if s0.State != Running || s0.Title != "the slow one" || s0.Path != "args.tuple_element0" || s0.Attempts != 1 {
		t.Errorf("slow node %+v", s0)
	}
	if !s1.Cached || s1.Path != "args.tuple_element1" {
		t.Errorf("cached node %+v", s1)
	}
	close(b.release)
	res, err := e.Result(ctx, id)
	if err != nil || len(res) != 1 || res[0] != 6 {
		t.Fatalf("Result = %x, %v", res, err)
	}
	st, _ = e.Status(id)
	st.Walk(func(s *Status, _ int) {
		if s.State != Finished {
			t.Errorf("%s is %v after the tree finished", s.Path, s.State)
		}
	})
	if err := e.Release(id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Status(id); status.CodeOf(err) != status.NotFound {
		t.Errorf("Status after Release: %v", err)
	}
	if _, err := e.Result(ctx, id); status.CodeOf(err) != status.NotFound {
		t.Errorf("Result after Release: %v", err)
	}
	if err := e.Release(id); status.CodeOf(err) != status.NotFound {
		t.Errorf("second Release: %v", err)
	}
}

func TestCancelTree(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat, Concurrency: 1}) // sequential: the second never starts
	ctx := testContext(t)
	id, err := e.Submit(ctx, request.New("add", request.New("slow", 1), request.New("slow", 2)))
	if err != nil {
		t.Fatal(err)
	}
	<-b.started
	if err := e.Cancel(id, "args.tuple_element5"); status.CodeOf(err) != status.NotFound {
		t.Errorf("Cancel of a missing node: %v", err)
	}
	if err := e.Cancel(id, "bogus"); status.CodeOf(err) != status.InvalidArgument {
		t.Errorf("Cancel with a bad path: %v", err)
	}
	if err := e.Cancel(id, "args.tuple_element0"); err != nil {
		t.Fatal(err)
	}
	if err := <-b.ctxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("handler saw %v", err)
	}
	_, err = e.Result(ctx, id)
	if status.CodeOf(err) != status.Canceled || !strings.Contains(err.Error(), "args.tuple_element0") {
		t.Errorf("Result = %v", err)
	}
	st, _ := e.Status(id)
	st.Walk(func(s *Status, _ int) {
		if s.State != Cancelled {
			t.Errorf("%s is %v, want cancelled", s.Path, s.State)
		}
	})
	if b.runs.Load() != 1 {
		t.Errorf("the second subrequest ran after the cancel")
	}
	if err := e.Cancel(id, ""); err != nil {
		t.Errorf("Cancel of a finished tree: %v", err)
	}
}

func TestFailedTreeStatus(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	ctx := testContext(t)
	id, err := e.Submit(ctx, request.New("add", request.New("slow", 1), request.New("nope", 2)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Result(ctx, id)
	if status.CodeOf(err) != status.NotFound {
		t.Fatalf("Result = %v", err)
	}
	st, _ := e.Status(id)
	if f := st.Subrequests[1]; f.State != Failed || !strings.Contains(f.Error, `unknown function "nope"`) {
		t.Errorf("failed node %+v", f)
	}
	if s := st.Subrequests[0]; s.State != Cancelled {
		t.Errorf("sibling %+v", s)
	}
	if st.State != Cancelled && st.State != Failed {
		t.Errorf("root %+v", st)
	}
}

func TestReleaseRunningTree(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat})
	id, err := e.Submit(testContext(t), request.New("slow", 1))
	if err != nil {
		t.Fatal(err)
	}
	<-b.started
	if err := e.Release(id); err != nil {
		t.Fatal(err)
	}
	if err := <-b.ctxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("handler saw %v", err)
	}
}

func TestTreesDroppedAfterTTLAndBounded(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat, KeepFinished: 30 * time.Millisecond, MaxTrees: 2})
	ctx := testContext(t)
	id1, err := e.Submit(ctx, request.New("add", 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Result(ctx, id1); err != nil {
		t.Fatal(err)
	}
	id2, err := e.Submit(ctx, request.New("slow", 1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(ctx, request.New("slow", 2)); status.CodeOf(err) != status.ResourceExhausted {
		t.Errorf("third tree: %v, want ResourceExhausted", err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := e.Status(id1); status.CodeOf(err) != status.NotFound {
		t.Errorf("finished tree kept past its time: %v", err)
	}
	id3, err := e.Submit(ctx, request.New("add", 1, 2))
	if err != nil {
		t.Errorf("after the drop: %v", err)
	}
	if n := e.Stats().Trees; n != 2 {
		t.Errorf("%d trees held", n)
	}
	close(b.release)
	if _, err := e.Result(ctx, id2); err != nil {
		t.Fatal(err)
	}
	e.Release(id3)
}

func TestSubmitInvalid(t *testing.T) {
	e := newEngine(t, Config{})
	if _, err := e.Submit(testContext(t), request.New("")); status.CodeOf(err) != status.InvalidArgument {
		t.Errorf("Submit of an invalid tree: %v", err)
	}
	if _, err := e.Status("nope"); status.CodeOf(err) != status.NotFound {
		t.Errorf("Status of an unknown id: %v", err)
	}
}

func TestCloseCancelsTrees(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["slow"] = b.fn(1)
	e, err := New(Config{Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Submit(testContext(t), request.New("slow", 1)); err != nil {
		t.Fatal(err)
	}
	<-b.started
	e.Close() // must not hang, must stop the handler
	if err := <-b.ctxErr; !errors.Is(err, context.Canceled) {
		t.Errorf("handler saw %v", err)
	}
}

func TestStateNames(t *testing.T) {
	want := []string{"created", "subrequests running", "running", "finished", "failed", "cancelled", "skipped"}
	for i, w := range want {
		if State(i).String() != w {
			t.Errorf("State(%d) = %q", i, State(i))
		}
	}
	if !Finished.Done() || Running.Done() {
		t.Error("Done")
	}
}

// A subrequest that a cached parent makes unnecessary ends as skipped, not
// cancelled.
func TestSkippedUnderCachedParent(t *testing.T) {
	e := newEngine(t, Config{Catalog: testCatalog()})
	ctx := testContext(t)
	tree := request.New("add+mem", request.New("num+mem", 1), request.New("num+mem", 2))
	resolveInt(t, e, tree) // now the root is cached
	id, err := e.Submit(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Result(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, _ := e.Status(id)
	if st.State != Finished || !st.Cached {
		t.Fatalf("root %+v", st)
	}
	for _, sub := range st.Subrequests {
		if sub.State != Skipped {
			t.Errorf("%s is %v, want skipped", sub.Path, sub.State)
		}
	}
}
