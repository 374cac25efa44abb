package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// worker is one cluster member: an Arbor server and its node.
type worker struct {
	name  string
	srv   *arbor.Server
	node  *Node
	url   string
	calls atomic.Int64 // calls of "work" it served
	slow  atomic.Int64 // nanoseconds each "work" call sleeps
}

// startWorkers starts size members named w0, w1, ..., each serving whoami
// (idempotent), work (idempotent, counts its calls), once (not
// idempotent), a counter service and a stream, with tags from tags(i).
func startWorkers(t *testing.T, size int, tags func(i int) map[string]string) []*worker {
	t.Helper()
	return startWorkersTB(t, size, tags)
}

// startWorkersB is startWorkers for benchmarks.
func startWorkersB(b *testing.B, size int) []*worker { return startWorkersTB(b, size, nil) }

func startWorkersTB(t testing.TB, size int, tags func(i int) map[string]string) []*worker {
	t.Helper()
	ws := make([]*worker, size)
	for i := range ws {
		w := &worker{name: fmt.Sprintf("w%d", i), srv: arbor.NewServer()}
		ws[i] = w
		must(t, arbor.Handle0(w.srv, "whoami", func(ctx context.Context) (string, error) { return w.name, nil }, arbor.Idempotent()))
		must(t, arbor.Handle1(w.srv, "work", func(ctx context.Context, x int) (int, error) {
			w.calls.Add(1)
			if d := time.Duration(w.slow.Load()); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			return 2 * x, nil
		}, arbor.Idempotent()))
		must(t, arbor.Handle1(w.srv, "once", func(ctx context.Context, d int) (string, error) {
			select {
			case <-time.After(time.Duration(d) * time.Millisecond):
			case <-ctx.Done():
				return "", ctx.Err()
			}
			return w.name, nil
		}))
		must(t, arbor.Handle2(w.srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }, arbor.Idempotent()))
		must(t, arbor.Handle1(w.srv, "counter", func(ctx context.Context, start int) (*arbor.Service, error) {
			n := start
			svc := arbor.NewService("counter")
			arbor.Handle1(svc, "inc", func(ctx context.Context, d int) (string, error) { n += d; return fmt.Sprintf("%s:%d", w.name, n), nil })
			return svc, nil
		}))
		must(t, arbor.HandleServerStream(w.srv, "count", func(ctx context.Context, n int, out *arbor.Sender[string]) error {
			for i := 0; i < n; i++ {
				if err := out.Send(w.name); err != nil {
					return err
				}
			}
			return nil
		}))
		engine, err := tree.Enable(w.srv, tree.Config{MemoryCacheBytes: 1 << 20})
		must(t, err)
		l, err := w.srv.Listen(context.Background(), "tcp://127.0.0.1:0")
		must(t, err)
		w.url = l.URL()
		var seeds []string
		if i > 0 {
			seeds = []string{ws[0].node.GossipAddr()}
		}
		cfg := testConfigNamed(w.name, seeds...)
		cfg.RPCAddrs = nil // from the server's listeners
		if tags != nil {
			cfg.Tags = tags(i)
		}
		w.node, err = Join(testContext(t), w.srv, cfg)
		must(t, err)
		t.Cleanup(func() { w.node.Close(); w.srv.Close(); engine.Close() })
	}
	nodes := make([]*Node, size)
	for i, w := range ws {
		nodes[i] = w.node
	}
	waitConverged(t, nodes, size)
	return ws
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dialCluster(t *testing.T, ws []*worker, tweak func(*ClientConfig)) *Client {
	t.Helper()
	cfg := DefaultClientConfig()
	cfg.Seeds = []string{ws[0].url}
	cfg.Logger = testLogger()
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := DialConfig(testContext(t), cfg)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	eventually(t, func() bool { return len(c.Members()) == len(ws) }, "the client to see every member")
	return c
}

// eventually is waitFor with the test timeout.
func eventually(t testing.TB, cond func() bool, what string) {
	t.Helper()
	waitFor(t, testTimeout, cond, func() string { return "timed out waiting for " + what })
}

// The client learns the membership from one seed, and calls spread over
// the members; every kind of call works through it.
func TestClientSpreadsCallsAndCarriesEveryKind(t *testing.T) {
	ws := startWorkers(t, 3, nil)
	c := dialCluster(t, ws, func(cfg *ClientConfig) { cfg.Balancer = &RoundRobin{} })
	ctx := testContext(t)
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		name, err := arbor.Call0[string](ctx, c, "whoami")
		must(t, err)
		seen[name]++
	}
	if len(seen) != 3 || seen["w0"] != 10 {
		t.Fatalf("round robin over 3 members: %v", seen)
	}
	// A promise chain stays on the member that holds its answers.
	p := arbor.Go2[int](ctx, c, "add", 1, 2)
	for i := 0; i < 5; i++ {
		p = arbor.Go2[int](ctx, c, "add", p, 1)
	}
	if v, err := p.Wait(); err != nil || v != 8 {
		t.Fatalf("promise chain through the cluster: %d %v", v, err)
	}
	// A capability: its calls go to the member that made it.
	ref, err := arbor.Call1[*arbor.Ref](ctx, c, "counter", 10)
	must(t, err)
	defer ref.Close()
	first, err := arbor.Call1[string](ctx, ref, "inc", 1)
	must(t, err)
	for i := 0; i < 5; i++ {
		got, err := arbor.Call1[string](ctx, ref, "inc", 1)
		must(t, err)
		if strings.Split(got, ":")[0] != strings.Split(first, ":")[0] {
			t.Fatalf("a reference's calls moved from %s to %s", first, got)
		}
	}
	// A stream and a request tree.
	s, err := arbor.CallServerStream[string](ctx, c, "count", 3)
	must(t, err)
	n := 0
	for {
		if _, err := s.Recv(); err == io.EOF {
			break
		} else {
			must(t, err)
		}
		n++
	}
	if n != 3 {
		t.Fatalf("stream: %d messages", n)
	}
	if v, err := tree.Resolve[int](ctx, c, request.New("add", request.New("add", 1, 2), 3)); err != nil || v != 6 {
		t.Fatalf("tree through the cluster: %d %v", v, err)
	}
}

// Tags select members; no match fails at once, naming the filter; a
// named member gets the call.
func TestClientTagsAndNoMatch(t *testing.T) {
	ws := startWorkers(t, 3, func(i int) map[string]string {
		if i == 2 {
			return map[string]string{"role": "gpu"}
		}
		return map[string]string{"role": "cpu"}
	})
	c := dialCluster(t, ws, nil)
	ctx := testContext(t)
	for i := 0; i < 10; i++ {
		name, err := arbor.Call0[string](WithTags(ctx, "role=gpu"), c, "whoami")
		if err != nil || name != "w2" {
			t.Fatalf("role=gpu: %q %v", name, err)
		}
	}
	start := time.Now()
	_, err := arbor.Call0[string](WithTags(ctx, "role=tpu"), c, "whoami")
	if !errors.Is(err, arbor.ErrUnavailable) || !strings.Contains(err.Error(), "role=tpu") {
		t.Fatalf("no member matches: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("no match took %v: it should fail at once", d)
	}
	if _, err := arbor.Call0[string](WithTags(ctx, "=x"), c, "whoami"); !errors.Is(err, arbor.ErrInvalidArgument) {
		t.Errorf("malformed filter: %v", err)
	}
	if name, err := arbor.Call0[string](WithMember(ctx, "w1"), c, "whoami"); err != nil || name != "w1" {
		t.Errorf("WithMember: %q %v", name, err)
	}
	// A key always reaches the same member.
	var byKey string
	for i := 0; i < 10; i++ {
		name, err := arbor.Call0[string](WithKey(ctx, "user-42"), c, "whoami")
		must(t, err)
		if byKey == "" {
			byKey = name
		}
		if name != byKey {
			t.Fatalf("key moved from %s to %s", byKey, name)
		}
	}
}

// A member that dies: idempotent calls never fail (retried elsewhere),
// the dead member leaves the rotation, and calls refused before a server
// accepted them go elsewhere whatever the function.
func TestClientFailover(t *testing.T) {
	ws := startWorkers(t, 3, nil)
	c := dialCluster(t, ws, nil)
	ctx := testContext(t)
	// Warm every member's connection.
	for i := 0; i < 30; i++ {
		_, err := arbor.Call1[int](ctx, c, "work", i)
		must(t, err)
	}
	var failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v, err := arbor.Call1[int](ctx, c, "work", i)
				if err != nil || v != 2*i {
					failed.Add(1)
					t.Errorf("work(%d) = %d, %v", i, v, err)
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	ws[1].srv.Close() // abruptly: connections reset, calls in flight lost
	ws[1].node.Close()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d idempotent calls failed across a member's death", failed.Load())
	}
	retries, _, _ := c.Counters()
	t.Logf("retries: %d", retries)
	// Not idempotent, refused before running (the member is gone): retried.
	for i := 0; i < 10; i++ {
		if _, err := arbor.Call1[string](WithMember(ctx, "w0"), c, "once", 0); err != nil {
			t.Fatalf("once on a live member: %v", err)
		}
	}
	eventually(t, func() bool { return !slices.ContainsFunc(c.Members(), func(m Member) bool { return m.Name == "w1" }) }, "w1 to leave the client's view")
}

// A call that is not idempotent and was running when its member died is
// not retried: the caller learns it may or may not have happened.
func TestClientDoesNotRetryNonIdempotentInFlight(t *testing.T) {
	ws := startWorkers(t, 2, nil)
	c := dialCluster(t, ws, nil)
	ctx := testContext(t)
	errc := make(chan error, 1)
	go func() {
		_, err := arbor.Call1[string](WithMember(ctx, "w1"), c, "once", 5000)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	ws[1].srv.Close()
	err := <-errc
	if !errors.Is(err, arbor.ErrUnavailable) || !errors.Is(err, arbor.ErrConnection) {
		t.Fatalf("in-flight non-idempotent call: %v", err)
	}
	// Without WithMember the same: not retried on w0.
	go func() {
		_, err := arbor.Call1[string](WithTags(ctx, ""), c, "once", 5000)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	ws[0].srv.Close()
	ws[1].srv.Close()
	if err := <-errc; err == nil {
		t.Fatal("a non-idempotent call whose member died succeeded")
	}
}

// Hedging: with one member 50 ms slow, a second copy after a short delay
// cuts the tail; the loser is cancelled. Counted as calls that took the
// slow member's time, not as a percentile: a loaded machine moves the
// percentiles of a short run, not the count of slow calls.
func TestClientHedging(t *testing.T) {
	ws := startWorkers(t, 3, nil)
	ws[0].slow.Store(int64(50 * time.Millisecond))
	rec := &countingRecorder{}
	measure := func(hedge time.Duration) (slow int, hedges int64) {
		c := dialCluster(t, ws, func(cfg *ClientConfig) {
			cfg.Hedge.Delay = hedge
			cfg.Balancer = NewRandom(nil) // reaches the slow member a third of the time (round robin would correlate with the hedges)
			cfg.Recorder = rec
		})
		ctx := testContext(t)
		for i := 0; i < 90; i++ {
			start := time.Now()
			_, err := arbor.Call1[int](ctx, c, "work", i)
			must(t, err)
			if time.Since(start) >= 45*time.Millisecond {
				slow++
			}
		}
		_, h, _ := c.Counters()
		return slow, h
	}
	plain, _ := measure(0)
	hedged, n := measure(5 * time.Millisecond)
	t.Logf("calls of 45ms or more: %d of 90 without hedging, %d with hedging at 5ms (%d hedges)", plain, hedged, n)
	if n == 0 {
		t.Fatal("no call was hedged")
	}
	if plain < 10 || hedged > plain/4 {
		t.Errorf("hedging did not cut the tail: %d slow calls → %d", plain, hedged)
	}
	if got := rec.hedged.Load(); got != n {
		t.Errorf("the recorder saw %d hedges, the client counted %d", got, n)
	}
}

// countingRecorder is a Recorder that counts.
type countingRecorder struct{ retried, hedged, refused atomic.Int64 }

func (r *countingRecorder) Retried(string)            { r.retried.Add(1) }
func (r *countingRecorder) Hedged(string)             { r.hedged.Add(1) }
func (r *countingRecorder) RetryBudgetRefused(string) { r.refused.Add(1) }

// The retry budget bounds retries of calls lost in flight to a fraction
// of calls: a member that fails every call is not stormed.
func TestClientRetryBudget(t *testing.T) {
	var b retryBudget
	b.init(RetryPolicy{BudgetRatio: 0.1, BudgetMin: 1})
	allowed := 0
	for i := 0; i < 1000; i++ {
		b.deposit()
		if b.withdraw() {
			allowed++
		}
	}
	// The initial 10 tokens, 0.1 per call, and ~1 a second.
	if allowed < 100 || allowed > 115 {
		t.Fatalf("%d retries allowed for 1000 calls at a 10%% budget", allowed)
	}
}

// A dial whose context ends before any seed has sent the member list
// fails with the context's code, so that the caller (arbor call
// --cluster --timeout) reports a deadline, not an unavailable cluster.
func TestDialDeadlineBeforeMemberList(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn // accepted, never answered: no HELLO comes
	var mu sync.Mutex
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, nc)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, nc := range held {
			nc.Close()
		}
	}()
	cfg := DefaultClientConfig()
	cfg.Seeds = []string{"tcp://" + l.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	c, err := DialConfig(ctx, cfg)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded with a seed that never answers")
	}
	if arbor.CodeOf(err) != arbor.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial: %v (code %v); want DeadlineExceeded, matching context.DeadlineExceeded", err, arbor.CodeOf(err))
	}
	if !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("dial: %v; want the seed named", err)
	}
}
