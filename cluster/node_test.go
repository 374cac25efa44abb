package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/testproc"
)

func TestJoinRequiresRPCAddrs(t *testing.T) {
	cfg := testConfigNamed("a")
	cfg.RPCAddrs = nil
	_, err := Join(testContext(t), nil, cfg)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "RPCAddrs") {
		t.Fatalf("Join without RPCAddrs: got %v, want ErrConfig naming RPCAddrs", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"space in name", func(c *Config) { c.Name = "a b" }, "Name"},
		{"short key", func(c *Config) { c.Key = []byte("short") }, "Key"},
		{"bad bind addr", func(c *Config) { c.BindAddr = "localhost" }, "BindAddr"},
		{"seed without port", func(c *Config) { c.Seeds = []string{"127.0.0.1"} }, "Seeds[0]"},
		{"tag with comma", func(c *Config) { c.Tags = map[string]string{"role": "a,b"} }, "contains ','"},
		{"tags too large", func(c *Config) { c.Tags = map[string]string{"big": strings.Repeat("x", 600)} }, "limit is 512"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfigNamed("a")
			tc.tweak(&cfg)
			_, err := start(testContext(t), cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if c.BindPort != 7946 || c.BindAddr != "127.0.0.1" || c.Timing != DefaultTiming() {
		t.Fatalf("DefaultConfig = %+v", c)
	}
	if !strings.Contains(c.Name, "-") || c.Name == DefaultConfig().Name {
		t.Fatalf("default names %q should be host-based with a random suffix", c.Name)
	}
}

func TestPortZeroAndMembers(t *testing.T) {
	tags := func(i int) map[string]string {
		return map[string]string{"role": []string{"worker", "worker", "gateway"}[i], "zone": "a"}
	}
	nodes := startCluster(t, 3, func(i int, c *Config) {
		c.Tags = tags(i)
		c.RPCAddrs = []string{fmt.Sprintf("tcp://127.0.0.1:%d", 7000+i), fmt.Sprintf("unix:/tmp/n%d.sock", i)}
	})
	for _, n := range nodes {
		host, port, err := net.SplitHostPort(n.GossipAddr())
		if err != nil || host != "127.0.0.1" || port == "0" {
			t.Fatalf("GossipAddr %q: want 127.0.0.1 and the chosen port (%v)", n.GossipAddr(), err)
		}
	}
	for _, n := range nodes {
		ms := n.Members(Filter{})
		if len(ms) != 3 {
			t.Fatalf("%s sees %d members, want 3", n.Name(), len(ms))
		}
		for i, m := range ms {
			if m.Name != fmt.Sprintf("n%d", i) || m.GossipAddr != nodes[i].GossipAddr() || m.State != StateAlive {
				t.Fatalf("%s sees member %d as %+v", n.Name(), i, m)
			}
			if m.RPCAddrs[0] != fmt.Sprintf("tcp://127.0.0.1:%d", 7000+i) || len(m.RPCAddrs) != 2 {
				t.Fatalf("%s sees %s with RPC addresses %v", n.Name(), m.Name, m.RPCAddrs)
			}
			if m.Tags["role"] != tags(i)["role"] {
				t.Fatalf("%s sees %s with tags %v", n.Name(), m.Name, m.Tags)
			}
		}
		workers := n.Members(mustFilter(t, "role=worker,zone=a"))
		if len(workers) != 2 || workers[0].Name != "n0" || workers[1].Name != "n1" {
			t.Fatalf("%s: role=worker,zone=a selects %v", n.Name(), workers)
		}
		if l := n.Local(); l.Name != n.Name() || l.State != StateAlive {
			t.Fatalf("Local() = %+v", l)
		}
	}
}

func mustFilter(t testing.TB, s string) Filter {
	t.Helper()
	f, err := ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestJoinUnreachableSeed(t *testing.T) {
	seed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	cfg := testConfigNamed("lonely", seed)
	cfg.JoinTimeout = 400 * time.Millisecond
	began := time.Now()
	_, err := start(testContext(t), cfg)
	var je *JoinError
	if !errors.As(err, &je) {
		t.Fatalf("got %v, want a *JoinError", err)
	}
	if !strings.Contains(err.Error(), "seed "+seed+": ") || je.Attempts < 2 {
		t.Fatalf("error %q should name the seed %s and show retries", err, seed)
	}
	if el := time.Since(began); el > 3*time.Second {
		t.Fatalf("join gave up after %v, JoinTimeout was 400ms", el)
	}
}

func TestJoinRetriesUntilSeedStarts(t *testing.T) {
	port := freePort(t)
	seedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	joined := make(chan error, 1)
	var late *Node
	go func() {
		var err error
		late, err = start(testContext(t), testConfigNamed("late", seedAddr))
		joined <- err
	}()
	time.Sleep(300 * time.Millisecond) // the joiner's first attempts fail
	cfg := testConfigNamed("seed")
	cfg.BindPort = port
	seed := startNode(t, cfg)
	if err := recv(t, joined); err != nil {
		t.Fatalf("join with retries: %v", err)
	}
	t.Cleanup(func() { _ = late.Close() })
	waitConverged(t, []*Node{seed, late}, 2)
}

func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

func TestEncryptionKey(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	nodes := startCluster(t, 2, func(_ int, c *Config) { c.Key = key })

	for name, k := range map[string][]byte{"wrongkey": bytes.Repeat([]byte{2}, 32), "nokey": nil} {
		cfg := testConfigNamed(name, nodes[0].GossipAddr())
		cfg.Key = k
		cfg.JoinTimeout = 500 * time.Millisecond
		n, err := start(testContext(t), cfg)
		if err == nil {
			n.Close()
			t.Fatalf("%s joined an encrypted cluster", name)
		}
		var je *JoinError
		if !errors.As(err, &je) {
			t.Fatalf("%s: got %v, want a *JoinError", name, err)
		}
	}
	// Give stray packets a moment, then check that nobody got in.
	time.Sleep(200 * time.Millisecond)
	for _, n := range nodes {
		if got := len(n.Members(Filter{})); got != 2 {
			t.Fatalf("%s has %d members, want 2: %v", n.Name(), got, n.Members(Filter{}))
		}
	}
}

func TestNameConflict(t *testing.T) {
	a := startNode(t, testConfigNamed("same"))
	cfg := testConfigNamed("same", a.GossipAddr())
	n, err := start(testContext(t), cfg)
	if err == nil {
		n.Close()
		t.Fatal("a second node named \"same\" joined")
	}
	if !errors.Is(err, ErrNameConflict) || !strings.Contains(err.Error(), a.GossipAddr()) {
		t.Fatalf("got %v, want ErrNameConflict naming %s", err, a.GossipAddr())
	}
	if got := len(a.Members(Filter{})); got != 1 {
		t.Fatalf("first node has %d members after the refused join, want 1", got)
	}
}

func TestSetTagsAndLoadReachEveryMember(t *testing.T) {
	nodes := startCluster(t, 3, func(_ int, c *Config) { c.Tags = map[string]string{"role": "worker"} })
	var chans []<-chan Event
	for _, n := range nodes {
		ch, cancel := n.Subscribe()
		t.Cleanup(cancel)
		chans = append(chans, ch)
	}
	if err := nodes[2].SetTags(testContext(t), map[string]string{"role": "gpu", "zone": "b"}); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		ev, _ := waitEvent(t, ch, 5*time.Second, is(EventUpdated, "n2"), "tags update of n2")
		if ev.Member.Tags["role"] != "gpu" || ev.Member.Tags["zone"] != "b" {
			t.Fatalf("node %d got update with tags %v", i, ev.Member.Tags)
		}
		if got := nodes[i].Members(mustFilter(t, "role=gpu")); len(got) != 1 || got[0].Name != "n2" {
			t.Fatalf("node %d: role=gpu selects %v", i, got)
		}
	}
	if err := nodes[0].SetLoad(testContext(t), 0.75); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		ev, _ := waitEvent(t, ch, 5*time.Second, is(EventUpdated, "n0"), "load update of n0")
		if ev.Member.Load != 0.75 || ev.Member.Tags["role"] != "worker" {
			t.Fatalf("node %d got %+v, want load 0.75 and the old tags", i, ev.Member)
		}
	}
	err := nodes[0].SetTags(testContext(t), map[string]string{"big": strings.Repeat("x", 500)})
	if !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("oversized tags: got %v, want ErrMetaTooLarge", err)
	}
	if err := nodes[0].SetTags(testContext(t), map[string]string{"a=b": "c"}); err == nil {
		t.Fatal("a tag key with '=' was accepted")
	}
	if err := nodes[0].SetLoad(testContext(t), mathNaN()); err == nil {
		t.Fatal("a NaN load was accepted")
	}
	if got := nodes[1].Members(mustFilter(t, "role=worker")); len(got) != 2 {
		t.Fatalf("refused updates changed the view: role=worker selects %v", got)
	}
}

func TestLeaveIsNotFailure(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	ch, cancel := nodes[0].Subscribe()
	defer cancel()
	if err := nodes[2].Leave(testContext(t)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	ev, seen := waitEvent(t, ch, 5*time.Second, func(ev Event) bool {
		return ev.Member.Name == "n2" && (ev.Kind == EventLeft || ev.Kind == EventFailed)
	}, "departure of n2")
	if ev.Kind != EventLeft {
		t.Fatalf("a node that left was reported %v (events %v)", ev.Kind, seen)
	}
	if seen[0].Kind != EventLeaving {
		t.Fatalf("events %v: want leaving before left", seen)
	}
	waitFor(t, 5*time.Second, func() bool {
		m, ok := nodes[1].Member("n2")
		return ok && m.State == StateLeft
	}, func() string { m, _ := nodes[1].Member("n2"); return "n1 sees n2 as " + m.State.String() })
	if err := nodes[2].Leave(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Leave: %v, want ErrClosed", err)
	}
	if err := nodes[2].SetLoad(testContext(t), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetLoad after Leave: %v, want ErrClosed", err)
	}
}

func TestCloseWithoutLeaveIsFailure(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	ch, cancel := nodes[0].Subscribe()
	defer cancel()
	nodes[2].Close()
	ev, seen := waitEvent(t, ch, 10*time.Second, func(ev Event) bool {
		return ev.Member.Name == "n2" && (ev.Kind == EventLeft || ev.Kind == EventFailed)
	}, "departure of n2")
	if ev.Kind != EventFailed {
		t.Fatalf("a node that stopped without leaving was reported %v (events %v)", ev.Kind, seen)
	}
	if got := len(nodes[0].Members(Filter{})); got != 2 {
		t.Fatalf("%d members after the failure, want 2", got)
	}
}

func TestKilledProcessIsFailure(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	ch, cancel := nodes[0].Subscribe()
	defer cancel()
	c := startChild(t, "child", nodes[0].GossipAddr())
	waitEvent(t, ch, 10*time.Second, is(EventJoined, c.name), "child joined")
	c.signal(t, syscall.SIGKILL)
	began := time.Now()
	ev, seen := waitEvent(t, ch, 10*time.Second, func(ev Event) bool {
		return ev.Member.Name == c.name && (ev.Kind == EventLeft || ev.Kind == EventFailed)
	}, "departure of the killed child")
	if ev.Kind != EventFailed {
		t.Fatalf("a SIGKILLed node was reported %v (events %v)", ev.Kind, seen)
	}
	t.Logf("SIGKILLed child marked failed after %v", time.Since(began).Round(time.Millisecond))
}

func TestFrozenProcessFailsThenRecovers(t *testing.T) {
	nodes := startCluster(t, 2, nil)
	ch, cancel := nodes[0].Subscribe()
	defer cancel()
	c := startChild(t, "frozen", nodes[0].GossipAddr())
	waitEvent(t, ch, 10*time.Second, is(EventJoined, c.name), "child joined")

	testproc.Freeze(t, c.cmd.Process)
	began := time.Now()
	waitEvent(t, ch, 5*time.Second, is(EventFailed, c.name), "frozen child marked failed")
	t.Logf("SIGSTOPped child marked failed after %v", time.Since(began).Round(time.Millisecond))
	waitFor(t, 5*time.Second, func() bool {
		m, _ := nodes[1].Member(c.name)
		return m.State == StateFailed
	}, func() string { return "n1 does not see the frozen child failed" })

	testproc.Thaw(c.cmd.Process)
	began = time.Now()
	waitEvent(t, ch, 10*time.Second, is(EventRecovered, c.name), "thawed child recovered")
	t.Logf("SIGCONTed child recovered after %v", time.Since(began).Round(time.Millisecond))
	waitConverged(t, nodes, 3)
}

func TestSuspectFromDetector(t *testing.T) {
	det := NewPhiDetector(PhiConfig{FirstHeartbeatEstimate: 20 * time.Millisecond, MinStdDev: 10 * time.Millisecond})
	nodes := startCluster(t, 2, func(i int, c *Config) {
		if i == 0 {
			c.Detector = det
			c.SuspectInterval = 10 * time.Millisecond
		}
	})
	ch, cancel := nodes[0].Subscribe()
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	beat := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := time.NewTicker(20 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case now := <-tk.C:
					_ = det.Heartbeat("n1", now)
				}
			}
		}()
	}
	beat()
	time.Sleep(300 * time.Millisecond)
	if m, _ := nodes[0].Member("n1"); m.State != StateAlive {
		t.Fatalf("n1 is %v while heartbeating", m.State)
	}
	close(stop)
	wg.Wait()
	waitEvent(t, ch, 5*time.Second, is(EventSuspect, "n1"), "suspect after heartbeats stop")
	if m, _ := nodes[0].Member("n1"); m.State != StateSuspect {
		t.Fatalf("n1 is %v, want suspect", m.State)
	}
	stop = make(chan struct{})
	beat()
	waitEvent(t, ch, 5*time.Second, is(EventRecovered, "n1"), "recovered after heartbeats resume")
	close(stop)
	wg.Wait()

	// A member that fails is forgotten by the detector (bounded memory).
	nodes[1].Close()
	waitEvent(t, ch, 10*time.Second, is(EventFailed, "n1"), "n1 failed")
	if n := det.Peers(); n != 0 {
		t.Fatalf("detector still tracks %d peers after n1 failed", n)
	}
}

// syncBuffer is a log sink safe for memberlist's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSlowSubscriberNeverBlocksGossip(t *testing.T) {
	cfg := testConfigNamed("n0")
	cfg.EventBuffer = 2
	n0 := startNode(t, cfg)
	stuck, cancelStuck := n0.Subscribe() // not read until the cluster formed
	defer cancelStuck()
	ch, cancel := n0.Subscribe()
	defer cancel()
	var mu sync.Mutex
	var joined []string
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for ev := range ch {
			if ev.Kind == EventJoined {
				mu.Lock()
				joined = append(joined, ev.Member.Name)
				mu.Unlock()
			}
		}
	}()
	nodes := []*Node{n0}
	for i := 1; i <= 5; i++ {
		nodes = append(nodes, startNode(t, testConfigNamed(fmt.Sprintf("n%d", i), n0.GossipAddr())))
	}
	waitConverged(t, nodes, 6)
	// The reader that keeps up saw every join although the other one
	// never read.
	waitFor(t, 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(joined) == 5 },
		func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprintf("reader saw joins %v", joined) })
	cancel()
	<-readerDone
	// The stuck one kept the newest events (the delivery goroutine holds
	// one, the ring two more); what it lost is counted, in order.
	var got []Event
	var missed uint64
	for {
		select {
		case ev := <-stuck:
			got = append(got, ev)
			missed += ev.Missed
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	// n0 emits the joins in the order it learns of them (the reader that
	// kept up saw that order), not necessarily by name.
	mu.Lock()
	order := append([]string(nil), joined...)
	mu.Unlock()
	last := order[len(order)-1]
	if len(got) > 3 || missed == 0 || uint64(len(got))+missed != 5 || got[len(got)-1].Member.Name != last {
		t.Fatalf("stuck subscriber read %v: want at most 3 events ending with %s (joins came as %v), accounting for all 5", got, last, order)
	}
	at := func(name string) int { return slices.Index(order, name) }
	for i := 1; i < len(got); i++ {
		if at(got[i].Member.Name) <= at(got[i-1].Member.Name) {
			t.Fatalf("stuck subscriber read %v out of the order %v", got, order)
		}
	}
}

func TestSubscribeCancelAndClose(t *testing.T) {
	n := startNode(t, testConfigNamed("a"))
	ch, cancel := n.Subscribe()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	cancel() // twice is harmless
	ch2, cancel2 := n.Subscribe()
	defer cancel2()
	n.Close()
	if _, ok := <-ch2; ok {
		t.Fatal("channel open after Close")
	}
	ch3, _ := n.Subscribe()
	if _, ok := <-ch3; ok {
		t.Fatal("subscription after Close is open")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLogRouting(t *testing.T) {
	var buf syncBuffer
	cfg := testConfigNamed("a")
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := startNode(t, cfg)
	startNode(t, testConfigNamed("b", a.GossipAddr())) // a logs the stream connection
	a.Close()
	out := buf.String()
	if !strings.Contains(out, "component=memberlist") || !strings.Contains(out, "level=DEBUG") {
		t.Fatalf("memberlist's log did not reach the logger at debug:\n%s", out)
	}
}

func mathNaN() float64 { var z float64; return z / z }
