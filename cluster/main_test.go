package cluster

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor/internal/testproc"
)

// childEnv makes the test binary run one cluster node instead of the
// tests: its value is the seed to join. Crash and freeze tests need a
// real process to SIGKILL and SIGSTOP.
const childEnv = "ARBOR_CLUSTER_CHILD_SEED"

func TestMain(m *testing.M) {
	if seed, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(seed))
	}
	if name, ok := os.LookupEnv(distChildEnv); ok {
		os.Exit(runDistChild(name))
	}
	code := m.Run()
	if code == 0 {
		code = verifyNoLeaks()
	}
	os.Exit(code)
}

// verifyNoLeaks is goleak.VerifyTestMain with more patience: after
// Memberlist.Shutdown, a probe in progress waits out its probe interval
// (scaled up to 8× by memberlist's health awareness) and a stream handler
// its TCP timeout before returning. Those end on their own within
// seconds; a goroutine still there after 15 s is a leak.
func verifyNoLeaks() int {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := goleak.Find()
		if err == nil {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runChild runs a node that joins seed, prints "READY name addr" and
// lives until its stdin closes (so it cannot outlive a dead parent) or it
// is killed.
func runChild(seed string) int {
	cfg := testConfigNamed(os.Getenv("ARBOR_CLUSTER_CHILD_NAME"), seed)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	n, err := start(ctx, cfg)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Printf("READY %s %s\n", n.Name(), n.GossipAddr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = n.Close()
	return 0
}

// testTimeout bounds every wait of a test.
const testTimeout = 20 * time.Second

// testLogger is silent unless ARBOR_CLUSTER_LOG is set (it writes to
// stderr rather than t.Log: memberlist may log after a test returns).
func testLogger() *slog.Logger {
	if os.Getenv("ARBOR_CLUSTER_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfigNamed is a loopback node on a kernel-chosen port.
func testConfigNamed(name string, seeds ...string) Config {
	return Config{
		Name:        name,
		BindAddr:    "127.0.0.1",
		BindPort:    0,
		Seeds:       seeds,
		JoinTimeout: 5 * time.Second,
		RPCAddrs:    []string{"tcp://127.0.0.1:7000"},
		Logger:      testLogger(),
		// Tests create and drop many nodes; reconnect quickly so a
		// healed partition merges within the test's patience.
		ReconnectInterval: 250 * time.Millisecond,
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startNode starts a node that is closed when the test ends.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := start(testContext(t), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// startCluster starts size nodes named n0, n1, ... (with cfg applied to
// each config) joined through n0, and waits until all see all.
func startCluster(t testing.TB, size int, tweak func(i int, c *Config)) []*Node {
	t.Helper()
	nodes := make([]*Node, size)
	for i := range nodes {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].GossipAddr()}
		}
		c := testConfigNamed(fmt.Sprintf("n%d", i), seeds...)
		if tweak != nil {
			tweak(i, &c)
		}
		nodes[i] = startNode(t, c)
	}
	waitConverged(t, nodes, size)
	return nodes
}

func waitConverged(t testing.TB, nodes []*Node, size int) {
	t.Helper()
	waitFor(t, testTimeout, func() bool {
		for _, n := range nodes {
			if alive(n) != size {
				return false
			}
		}
		return true
	}, func() string {
		var b strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&b, " %s sees %d alive;", n.Name(), alive(n))
		}
		return fmt.Sprintf("cluster of %d did not converge:%s", size, b.String())
	})
}

// alive counts the members n sees alive.
func alive(n *Node) int {
	c := 0
	for _, m := range n.Members(Filter{}) {
		if m.State == StateAlive {
			c++
		}
	}
	return c
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent reads events until one satisfies match, failing after d.
// Events read on the way are returned too, in order.
func waitEvent(t testing.TB, ch <-chan Event, d time.Duration, match func(Event) bool, what string) (Event, []Event) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var seen []Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("event channel closed while waiting for %s (seen %v)", what, seen)
			}
			seen = append(seen, ev)
			if match(ev) {
				return ev, seen
			}
		case <-timer.C:
			t.Fatalf("no %s within %v (seen %v)", what, d, seen)
		}
	}
}

func is(kind EventKind, name string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == kind && ev.Member.Name == name }
}

// child is the test binary re-executed as a node or member of its own.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	name  string
	addr  string
	once  sync.Once
}

// startChild re-executes the test binary as a node joining seed.
func startChild(t *testing.T, name, seed string) *child {
	t.Helper()
	c, f := startProcess(t, "child "+name, 3, childEnv+"="+seed, "ARBOR_CLUSTER_CHILD_NAME="+name)
	c.name, c.addr = f[1], f[2]
	return c
}

// startProcess re-executes the test binary with env added and waits for its
// first line, "READY" and n-1 more fields, which it returns; the child is
// killed when the test ends.
func startProcess(t *testing.T, what string, n int, env ...string) (*child, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(c.kill)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if len(f) != n || f[0] != "READY" {
			t.Fatalf("%s: unexpected first line %q", what, line)
		}
		return c, f
	case <-time.After(testTimeout):
		t.Fatalf("%s not ready within %v", what, testTimeout)
	}
	return nil, nil
}

func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to child %s: %v", sig, c.name, err)
	}
}

// kill ends the child (continuing it first in case it is stopped) and
// reaps it.
func (c *child) kill() {
	c.once.Do(func() {
		testproc.Thaw(c.cmd.Process)
		_ = c.cmd.Process.Kill()
		_ = c.stdin.Close()
		_ = c.cmd.Wait()
	})
}

// freePort returns a loopback port that was free for TCP and UDP a
// moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
