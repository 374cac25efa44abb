package tree_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

// WatchRequest delivers every transition of every request of a 3-level
// tree, in order, over one call: the server sees the watch and nothing
// else from the watcher (no polling).
func TestWatchRequestPushesEveryTransition(t *testing.T) {
	var calls atomic.Int64
	count := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if strings.HasPrefix(req.ID, "arbor.") { // not the tree's own function runs
				calls.Add(1)
			}
			return next(ctx, req)
		}
	}
	ts := startTreeServer(t, treeServerOpts{options: []arbor.ServerOption{arbor.WithInterceptors(count)}})
	ctx := testContext(t)
	// root(math_add) ← math_add(sleep 60, 1) ← sleep; and a sleep beside.
	n := request.New("math_add+none", request.New("math_add+none", request.New("sleep", 60), 1), request.New("sleep", 30))
	id, err := tree.Submit(ctx, ts.c, n)
	if err != nil {
		t.Fatal(err)
	}
	before := calls.Load()
	s, err := tree.WatchRequest(ctx, ts.c, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	states := map[string][]resolve.State{}
	var first *resolve.Status
	frames, done := 0, false
	for {
		ev, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		frames++
		switch ev.Kind {
		case tree.WatchStatus:
			if first == nil {
				first = ev.Status
				ev.Status.Walk(func(st *resolve.Status, _ int) { states[st.Path] = append(states[st.Path], st.State) })
			}
		case tree.WatchNode:
			p := ev.Status.Path
			if l := states[p]; len(l) == 0 || l[len(l)-1] != ev.Status.State {
				states[p] = append(states[p], ev.Status.State)
			}
		case tree.WatchDone:
			done = true
			if ev.Err != "" {
				t.Errorf("done with %q", ev.Err)
			}
		}
	}
	if first == nil || !done {
		t.Fatalf("no snapshot (%v) or no done event (%v)", first != nil, done)
	}
	// Every request ends finished, passing through its states in order.
	for path, l := range states {
		for i := 1; i < len(l); i++ {
			if l[i] < l[i-1] {
				t.Errorf("%s went back: %v", path, l)
			}
		}
		if l[len(l)-1] != resolve.Finished {
			t.Errorf("%s ended %v", path, l)
		}
	}
	inner := states["args.tuple_element0"]
	if len(inner) < 3 || inner[len(inner)-3] != resolve.SubrequestsRunning || inner[len(inner)-2] != resolve.Running {
		t.Errorf("the middle request's transitions %v lack subrequests running → running → finished", inner)
	}
	if got := calls.Load() - before; got != 1 {
		t.Errorf("the watcher made %d calls, want 1 (the watch)", got)
	}
	if frames < 8 {
		t.Errorf("%d events for a tree of 4 requests", frames)
	}
	t.Logf("%d events over 1 call: %v", frames, states)

	// A finished tree: its status, then done, at once.
	s2, err := tree.WatchRequest(ctx, ts.c, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ev, err := s2.Recv()
	if err != nil || ev.Kind != tree.WatchStatus || ev.Status.State != resolve.Finished {
		t.Fatalf("first event of a finished tree: %+v, %v", ev, err)
	}
	if ev, err := s2.Recv(); err != nil || ev.Kind != tree.WatchDone {
		t.Fatalf("second event: %+v, %v", ev, err)
	}
	if _, err := s2.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after done: %v", err)
	}
	// An unknown tree: NotFound.
	s3, err := tree.WatchRequest(ctx, ts.c, "nope")
	if err == nil {
		_, err = s3.Recv()
		s3.Close()
	}
	if !errors.Is(err, arbor.ErrNotFound) {
		t.Errorf("watching an unknown tree: %v", err)
	}
}
