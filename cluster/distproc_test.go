package cluster

// Distributed resolution across real processes: the test binary re-runs
// itself as members (runDistChild) that serve request trees with
// distribution on, on loopback, optionally over a shared redis-server.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

// distChildEnv makes the test binary run one distributing member named by
// its value; distSeedEnv is the gossip address to join (none: the first),
// distRedisEnv a Redis URL for the secondary cache, distHangEnv makes
// hang+mem hang on this member.
const (
	distChildEnv = "ARBOR_CLUSTER_DIST_CHILD"
	distSeedEnv  = "ARBOR_CLUSTER_DIST_SEED"
	distRedisEnv = "ARBOR_CLUSTER_DIST_REDIS"
	distHangEnv  = "ARBOR_CLUSTER_DIST_HANG"
)

// runDistChild serves leaf/pair in +mem and +full, wrap (Local), hang+mem
// and dist_ready (how many members, catalogs known, this member sees),
// prints "READY name gossip url", and lives until stdin closes.
func runDistChild(name string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "dist child:", err); return 1 }
	srv := arbor.NewServer()
	hang := os.Getenv(distHangEnv) != ""
	var d *Distributor
	for _, err := range []error{
		arbor.Handle1(srv, "leaf+mem", func(ctx context.Context, x int) (int, error) { return x, nil }),
		arbor.Handle2(srv, "pair+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }),
		arbor.Handle1(srv, "leaf+full", func(ctx context.Context, x int) (int, error) { return x, nil }),
		arbor.Handle2(srv, "pair+full", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }),
		arbor.Handle1(srv, "wrap", func(ctx context.Context, s string) (string, error) { return "<" + s + ">", nil }, arbor.Local()),
		arbor.Handle1(srv, "hang+mem", func(ctx context.Context, k int) (string, error) {
			if hang {
				<-ctx.Done()
				return "", ctx.Err()
			}
			return name, nil
		}),
		arbor.Handle0(srv, "dist_ready", func(ctx context.Context) (int, error) {
			if v := d.view.Load(); !v.incomplete {
				return len(v.members), nil
			}
			return 0, nil
		}),
	} {
		if err != nil {
			return fail(err)
		}
	}
	cfg := tree.Config{MemoryCacheBytes: 64 << 20}
	if u := os.Getenv(distRedisEnv); u != "" {
		r, err := cache.NewRedis(u, cache.RedisOptions{})
		if err != nil {
			return fail(err)
		}
		cfg.SecondaryCache = r
	}
	engine, err := tree.Enable(srv, cfg)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	var seeds []string
	if s := os.Getenv(distSeedEnv); s != "" {
		seeds = []string{s}
	}
	ncfg := testConfigNamed(name, seeds...)
	ncfg.RPCAddrs = []string{l.URL()} // Serve records its URL in a goroutine of its own
	node, err := Join(ctx, srv, ncfg)
	if err != nil {
		return fail(err)
	}
	d, err = Distribute(ctx, node, srv, engine, DistributeConfig{})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("READY %s %s %s\n", name, node.GossipAddr(), l.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	d.Close()
	srv.Close()
	node.Close()
	engine.Close()
	return 0
}

// distProc is a member in a child process and a client of it.
type distProc struct {
	*child
	gossip, url string
	client      *arbor.Client
}

// startDistProc starts member name joining seed ("" for none).
func startDistProc(t *testing.T, name, seed string, env ...string) *distProc {
	t.Helper()
	c, f := startProcess(t, "member "+name, 4, append([]string{distChildEnv + "=" + name, distSeedEnv + "=" + seed}, env...)...)
	c.name = f[1]
	p := &distProc{child: c, gossip: f[2], url: f[3]}
	var err error
	p.client, err = arbor.Dial(testContext(t), p.url)
	must(t, err)
	t.Cleanup(func() { p.client.Close() })
	return p
}

// startDistProcs starts members p0… and waits until every one knows every
// catalog.
func startDistProcs(t *testing.T, size int, env func(i int) []string) []*distProc {
	t.Helper()
	ps := make([]*distProc, size)
	var wg sync.WaitGroup
	ps[0] = startDistProc(t, "p0", "", envOf(env, 0)...)
	for i := 1; i < size; i++ {
		wg.Add(1)
		go func() { // starting processes in parallel saves seconds
			defer wg.Done()
			ps[i] = startDistProc(t, fmt.Sprintf("p%d", i), ps[0].gossip, envOf(env, i)...)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitDistReady(t, ps, size)
	return ps
}

func envOf(env func(int) []string, i int) []string {
	if env == nil {
		return nil
	}
	return env(i)
}

func waitDistReady(t *testing.T, ps []*distProc, size int) {
	t.Helper()
	ctx := testContext(t)
	eventually(t, func() bool {
		for _, p := range ps {
			if n, err := arbor.Call0[int](ctx, p.client, "dist_ready"); err != nil || n != size {
				return false
			}
		}
		return true
	}, fmt.Sprintf("%d members to know each other's catalogs", size))
}

// calls sums the runs of function id over the members, as their
// resolve_catalog reports them.
func calls(t *testing.T, ps []*distProc, id string) int64 {
	t.Helper()
	var n int64
	for _, p := range ps {
		fs, err := tree.Catalog(testContext(t), p.client)
		must(t, err)
		for _, f := range fs {
			if f.ID == id {
				n += f.Calls
			}
		}
	}
	return n
}

func levelTree(level string, leaves, base int) *request.Node {
	row := make([]*request.Node, leaves)
	for i := range row {
		row[i] = request.New("leaf"+level, base+i)
	}
	for len(row) > 1 {
		next := make([]*request.Node, 0, len(row)/2)
		for i := 0; i < len(row); i += 2 {
			next = append(next, request.New("pair"+level, row[i], row[i+1]))
		}
		row = next
	}
	return row[0]
}

// On 4 processes a 64-leaf +mem tree spreads over at least 3 members (its
// status tree says so), and the same tree at another member runs no leaf.
func TestProcessesTreeSpreadsAndReResolvesNothing(t *testing.T) {
	ps := startDistProcs(t, 4, nil)
	ctx := testContext(t)
	n := levelTree("+mem", 64, 0)
	id, err := tree.Submit(ctx, ps[0].client, n)
	must(t, err)
	if sum, err := tree.Result[int](ctx, ps[0].client, id); err != nil || sum != 63*64/2 {
		t.Fatalf("sum %d, %v", sum, err)
	}
	st, err := tree.Status(ctx, ps[0].client, id)
	must(t, err)
	where := map[string]int{}
	st.Walk(func(s *resolve.Status, _ int) {
		if s.UUID == "leaf+mem" {
			where[s.Node]++
		}
	})
	if len(where) < 3 {
		t.Errorf("leaves ran on %v: fewer than 3 members", where)
	}
	t.Logf("leaves per member: %v", where)
	if got := calls(t, ps, "leaf+mem"); got != 64 {
		t.Errorf("%d leaf runs, want 64", got)
	}
	if sum, err := tree.Resolve[int](ctx, ps[2].client, n); err != nil || sum != 63*64/2 {
		t.Fatalf("again at p2: %d, %v", sum, err)
	}
	if got := calls(t, ps, "leaf+mem"); got != 64 {
		t.Errorf("resolving again at p2 ran %d leaves", got-64)
	}
}

// 20 clients submit the same +full tree at 4 members at once: its leaves
// run once in all; a fresh 5th member, sharing the Redis, answers it from
// Redis without running anything.
func TestProcessesConcurrentOnceAndRedisFifthMember(t *testing.T) {
	redisURL := startTestRedis(t)
	env := func(int) []string { return []string{distRedisEnv + "=" + redisURL} }
	ps := startDistProcs(t, 4, env)
	ctx := testContext(t)
	n := levelTree("+full", 64, 5000)
	want := 0
	for i := range 64 {
		want += 5000 + i
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := arbor.Dial(ctx, ps[i%4].url) // a client of its own
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if sum, err := tree.Resolve[int](ctx, c, n); err != nil || sum != want {
				t.Errorf("client %d at %s: %d, %v", i, ps[i%4].name, sum, err)
			}
		}()
	}
	wg.Wait()
	if got := calls(t, ps, "leaf+full"); got != 64 {
		t.Errorf("20 concurrent identical trees ran %d leaves, want 64", got)
	}
	if got := calls(t, ps, "pair+full"); got != 63 {
		t.Errorf("20 concurrent identical trees ran %d pairs, want 63", got)
	}
	p4 := startDistProc(t, "p4", ps[0].gossip, env(4)...)
	all := append(ps, p4)
	waitDistReady(t, []*distProc{p4}, 5)
	if sum, err := tree.Resolve[int](ctx, p4.client, n); err != nil || sum != want {
		t.Fatalf("at the 5th member: %d, %v", sum, err)
	}
	if got := calls(t, all, "leaf+full") + calls(t, all, "pair+full"); got != 127 {
		t.Errorf("the 5th member's answer ran %d functions", got-127)
	}
	st, err := tree.Stats(ctx, p4.client)
	must(t, err)
	if st.SecondaryHits < 1 || st.Runs != 0 {
		t.Errorf("5th member: %d secondary hits, %d runs", st.SecondaryHits, st.Runs)
	}
}

// SIGKILL of the member resolving a subtree: the tree still finishes, and
// its status tree names both members.
func TestProcessesSIGKILLMidSubtree(t *testing.T) {
	names := []string{"p0", "p1", "p2"}
	cands := []Candidate{{Name: "p0"}, {Name: "p1"}, {Name: "p2"}}
	k, owner := -1, -1
	for i := range 64 {
		key := request.New("hang+mem", i).Key()
		if o := (Rendezvous{}).Pick(cands, string(key[:])); o > 0 {
			k, owner = i, o
			break
		}
	}
	ps := startDistProcs(t, 3, func(i int) []string {
		if i == owner {
			return []string{distHangEnv + "=1"}
		}
		return nil
	})
	ctx := testContext(t)
	id, err := tree.Submit(ctx, ps[0].client, request.New("wrap", request.New("hang+mem", k)))
	must(t, err)
	eventually(t, func() bool {
		st, err := tree.Status(ctx, ps[0].client, id)
		return err == nil && st.Subrequests[0].Node == names[owner] && st.Subrequests[0].State == resolve.Running
	}, "hang+mem to run on "+names[owner])
	ps[owner].kill()
	got, err := tree.Result[string](ctx, ps[0].client, id)
	if err != nil || got == "<"+names[owner]+">" {
		t.Fatalf("after SIGKILL of %s: %q, %v", names[owner], got, err)
	}
	st, err := tree.Status(ctx, ps[0].client, id)
	must(t, err)
	sub := st.Subrequests[0]
	if sub.State != resolve.Finished || len(sub.Tried) != 1 || sub.Tried[0] != names[owner] || "<"+sub.Node+">" != got {
		t.Errorf("status: %v on %q, tried %v; result %s", sub.State, sub.Node, sub.Tried, got)
	}
}

// testRedis is a redis-server a test started, on a fixed port so that it
// can be killed and started again at the same address.
type testRedis struct {
	t      *testing.T
	bin    string
	port   int
	dir    string
	url    string
	cmd    *exec.Cmd
	exited chan error
}

// startTestRedis starts a private redis-server on a free loopback port and
// returns its URL; it is killed when the test ends.
func startTestRedis(t *testing.T) string { return startTestRedisServer(t).url }

func startTestRedisServer(t *testing.T) *testRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not on PATH: run `make tools`")
	}
	var last error
	for range 3 { // another process may take the port between the probe and redis's bind
		l, err := net.Listen("tcp", "127.0.0.1:0")
		must(t, err)
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		r := &testRedis{t: t, bin: bin, port: port, dir: t.TempDir()}
		r.url = "redis://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + "/0"
		if last = r.start(); last == nil {
			t.Cleanup(r.kill)
			return r
		}
	}
	t.Fatalf("redis-server did not start: %v", last)
	return nil
}

// start runs the server and waits until it answers PING.
func (r *testRedis) start() error {
	var out bytes.Buffer
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c, err := cache.NewRedis(r.url, cache.RedisOptions{})
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return err
	}
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, out.String())
		default:
		}
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(pctx)
		cancel()
		if err == nil {
			r.cmd, r.exited = cmd, exited
			return nil
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not answer: %s", r.port, out.String())
}

// kill SIGKILLs the server, if it runs.
func (r *testRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd = nil
}
