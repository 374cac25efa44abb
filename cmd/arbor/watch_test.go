package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

// countingStream counts the messages a server stream sends.
type countingStream struct {
	arbor.Stream
	sent *atomic.Int64
}

func (s countingStream) Send(m []byte) error { s.sent.Add(1); return s.Stream.Send(m) }

// firstWrite signals its first write, then keeps what is written.
type firstWrite struct {
	syncBuffer
	once  sync.Once
	ready chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	w.once.Do(func() { close(w.ready) })
	return n, err
}

// `arbor status --watch` prints every transition of a 3-level tree in
// order, from one call whose stream sends exactly the lines printed: no
// polling.
func TestStatusWatch(t *testing.T) {
	var watches, statuses, frames atomic.Int64
	count := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			switch req.ID {
			case tree.WatchID:
				watches.Add(1)
				req.Stream = countingStream{req.Stream, &frames}
			case tree.StatusID:
				statuses.Add(1)
			}
			return next(ctx, req)
		}
	}
	srv := arbor.NewServer(arbor.WithInterceptors(count))
	gate := make(chan struct{})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(arbor.Handle1(srv, "nap", func(ctx context.Context, x int) (int, error) {
		select {
		case <-gate:
			return x, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}))
	must(arbor.Handle2(srv, "add+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	// One subrequest at a time: when the watch begins, only the first
	// leaf runs (held by gate); the rest of the tree is still to come.
	engine, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 1 << 20, Concurrency: 1})
	must(err)
	defer engine.Close()
	ctx := testContext(t)
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	must(err)
	defer srv.Close()
	c, err := arbor.Dial(ctx, l.URL())
	must(err)
	defer c.Close()
	n := request.New("add+mem",
		request.New("add+mem", request.New("nap", 1), request.New("nap", 2)),
		request.New("add+mem", request.New("nap", 3), request.New("nap", 4)))
	id, err := tree.Submit(ctx, c, n)
	must(err)

	out := &firstWrite{ready: make(chan struct{})}
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"status", "--watch", "--timeout", "0", l.URL(), id}, out, &stderr) }()
	select {
	case <-out.ready: // the status tree is out: let the leaves run
	case <-ctx.Done():
		t.Fatal("no status tree printed")
	}
	close(gate)
	if code := <-done; code != exitOK {
		t.Fatalf("status --watch = %d, %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) < 8 || lines[len(lines)-1] != "done" {
		t.Fatalf("output:\n%s", out.String())
	}
	// 7 lines of status tree, then one line per change.
	states := map[string][]string{}
	order := []string{"created", "subrequests running", "running", "finished"}
	rank := func(s string) int {
		for i, o := range order {
			if strings.HasPrefix(s, o) {
				return i
			}
		}
		t.Fatalf("unexpected state %q", s)
		return -1
	}
	for i, line := range lines[:len(lines)-1] {
		path, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		_, state, ok2 := strings.Cut(rest, ": ")
		if !ok || !ok2 {
			t.Fatalf("line %d: %q", i, line)
		}
		if p := states[path]; i >= 7 && len(p) > 0 && rank(state) < rank(p[len(p)-1]) {
			t.Errorf("%s went from %s back to %s", path, p[len(p)-1], state)
		}
		states[path] = append(states[path], state)
	}
	if len(states) != 7 {
		t.Errorf("%d requests in the output, want 7:\n%s", len(states), out.String())
	}
	for path, ss := range states {
		if ss[len(ss)-1] != "finished" {
			t.Errorf("%s ended %q", path, ss[len(ss)-1])
		}
		if path != "args.tuple_element0.args.tuple_element0" && !slices.Contains(ss[1:], "running") {
			t.Errorf("%s: no running printed (%v)", path, ss)
		}
	}
	events := len(lines) - 7 - 1
	if w, s, f := watches.Load(), statuses.Load(), frames.Load(); w != 1 || s != 0 || f != int64(1+events+1) {
		t.Errorf("%d watch call(s), %d status call(s), %d frames for 1 status tree + %d changes + done", w, s, f, events)
	}
	t.Logf("%d frames:\n%s", frames.Load(), out.String())
}

// Two `arbor serve --gossip --distribute` processes: a tree submitted at
// one resolves on both, and status --watch names both.
func TestServeDistributeWatch(t *testing.T) {
	var ps []*serveProc
	gossip := ""
	for i := range 2 {
		args := []string{"--gossip", "127.0.0.1:0", "--node", fmt.Sprintf("m%d", i), "--distribute"}
		if i > 0 {
			args = append(args, "--join", gossip)
		}
		p := startServeProc(t, "", args...)
		for deadline := time.Now().Add(10 * time.Second); gossip == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			gossip, _ = p.line("gossip on ")
		}
		if gossip == "" {
			t.Fatalf("m%d printed no gossip address; stderr:\n%s", i, p.stderr.String())
		}
		ps = append(ps, p)
	}
	ctx := testContext(t)
	for round := 0; ; round++ {
		leaf := func(i int) string {
			return fmt.Sprintf(`{"uuid":"math_add+mem","args":[%d,%d]}`, round, i)
		}
		pair := func(x, y string) string { return `{"uuid":"math_add+mem","args":[` + x + `,` + y + `]}` }
		file := writeFile(t, "t.json", pair(pair(pair(leaf(0), leaf(1)), pair(leaf(2), leaf(3))), pair(pair(leaf(4), leaf(5)), pair(leaf(6), leaf(7)))))
		code, stdout, stderr := runArbor(ctx, "submit", ps[0].url, file)
		if code != exitOK {
			t.Fatalf("submit: %d %s", code, stderr)
		}
		code, out, stderr := runArbor(ctx, "status", "--watch", ps[0].url, strings.TrimSpace(stdout))
		if code != exitOK || !strings.HasSuffix(out, "done\n") {
			t.Fatalf("status --watch: %d %q %s", code, out, stderr)
		}
		if strings.Contains(out, " on m0") && strings.Contains(out, " on m1") {
			return
		}
		if round == 50 {
			t.Fatalf("the tree never ran on both members:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond) // m0 may not know m1's catalog yet
	}
}

func TestServeDistributeUsage(t *testing.T) {
	ctx := testContext(t)
	for _, args := range [][]string{
		{"--distribute"},
		{"--gossip", "127.0.0.1:0", "--require", "f=gpu"},
		{"--gossip", "127.0.0.1:0", "--distribute", "--require", "f"},
		{"--gossip", "127.0.0.1:0", "--distribute", "--require", "f=a=b,=c"},
	} {
		code, _, stderr := runArbor(ctx, append([]string{"serve", "--listen", "tcp://127.0.0.1:0", "--cache-dir", ""}, args...)...)
		if code != exitUsage || !strings.Contains(stderr, "--") {
			t.Errorf("serve %v = %d, %q", args, code, stderr)
		}
	}
}

// A listener on every interface (tcp://*:PORT, printed as tcp://[::]:PORT)
// is advertised to the cluster at the gossip host: [::] would send other
// machines' clients to themselves.
func TestServeGossipAdvertisesReachableAddr(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://*:0", "--cache-dir", "", "--gossip", "127.0.0.1:0", "--node", "star")
	port := s.addrs[0][strings.LastIndex(s.addrs[0], ":")+1:]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		code, stdout, stderr := runArbor(testContext(t), "members", "--listen", "0s", "tcp://127.0.0.1:"+port)
		if code == exitOK && strings.Contains(stdout, "tcp://127.0.0.1:"+port) {
			return
		}
		if code == exitOK || time.Now().After(deadline) { // exitFail until serve has joined
			t.Fatalf("members = %d, %q, %q; want star at tcp://127.0.0.1:%s", code, stdout, stderr, port)
		}
	}
}
