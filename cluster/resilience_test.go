package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
)

// A client whose member connections have an interceptor (or a bearer
// token) sends typed calls through Call, not the fast path. The pick
// Route made for the fast path must not count: round robin still takes
// the members in turn, and no member keeps a call in flight that never
// ends (the load-aware balancers would see it ever busier).
func TestRouteLeavesNoTraceWhenNotPlain(t *testing.T) {
	ws := startWorkers(t, 2, nil)
	pass := func(next arbor.CallFunc) arbor.CallFunc { return next }
	c := dialCluster(t, ws, func(cfg *ClientConfig) {
		cfg.Options = []arbor.ClientOption{arbor.WithInterceptors(pass)}
		cfg.Balancer = &RoundRobin{}
	})
	checkTurns(t, c, "with an interceptor")
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, n := range c.nodes {
		if got := n.stats.Inflight(); got != 0 {
			t.Errorf("member %s: %d calls in flight after every call returned", name, got)
		}
	}
}

// With hedging on, an idempotent call goes through Call; the pick Route
// made before handing it over must not count either: round robin still
// takes the members in turn.
func TestHedgedCallsKeepRoundRobinTurns(t *testing.T) {
	ws := startWorkers(t, 2, nil)
	c := dialCluster(t, ws, func(cfg *ClientConfig) {
		cfg.Hedge.Delay = time.Minute // on, but never reached
		cfg.Balancer = &RoundRobin{}
	})
	checkTurns(t, c, "with hedging on")
}

// checkTurns makes 20 calls through c, a round robin over members w0 and
// w1, and checks that each got 10.
func checkTurns(t *testing.T, c *Client, what string) {
	t.Helper()
	ctx := testContext(t)
	seen := map[string]int{}
	for range 20 {
		name, err := arbor.Call0[string](ctx, c, "whoami")
		must(t, err)
		seen[name]++
	}
	if seen["w0"] != 10 || seen["w1"] != 10 {
		t.Errorf("round robin over 2 members %s: %v", what, seen)
	}
}

// A plain call whose every candidate is unreachable fails with the
// unreachable member's error (a connection error, naming it), as through
// Call, not with the picker's "already tried" that hides the cause.
func TestRouteKeepsTheCauseWhenEveryMemberFailed(t *testing.T) {
	ws := startWorkers(t, 2, func(i int) map[string]string { return map[string]string{"n": fmt.Sprint(i)} })
	c := dialCluster(t, ws, nil)
	ctx := testContext(t)
	ws[1].srv.Close() // its node still gossips: still a member
	_, err := arbor.Call0[string](WithTags(ctx, "n=1"), c, "whoami")
	if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "w1") {
		t.Fatalf("every candidate unreachable: %v (w1's connection refused expected)", err)
	}
}

// The same when the member's connection was up and its server went away
// after: the refusal that ends the call is what the caller sees.
func TestRouteKeepsTheCauseAfterARefusedAttempt(t *testing.T) {
	ws := startWorkers(t, 2, func(i int) map[string]string { return map[string]string{"n": fmt.Sprint(i)} })
	c := dialCluster(t, ws, nil)
	ctx := WithTags(testContext(t), "n=1")
	if _, err := arbor.Call0[string](ctx, c, "whoami"); err != nil {
		t.Fatal(err)
	}
	ws[1].srv.Close()
	_, err := arbor.Call0[string](ctx, c, "whoami")
	if err == nil || strings.Contains(err.Error(), "already tried") || !errors.Is(err, arbor.ErrConnection) {
		t.Fatalf("the only candidate failed: %v (its connection's error expected)", err)
	}
}

// A member whose connection broke while gossip kept it (its server
// restarted, a network blip longer than the keep-alive timeout) goes
// silent for the detector, which takes it out of rotation; once it
// answers again it must come back. Nothing redials a member that is not
// picked, though, and a suspect is not picked while another member is
// trusted: it stayed out of rotation for as long as it stayed a member.
func TestSuspectMemberWithBrokenConnectionComesBack(t *testing.T) {
	ws := startWorkers(t, 2, nil)
	c := dialCluster(t, ws, func(cfg *ClientConfig) { cfg.Balancer = &RoundRobin{} })
	ctx := testContext(t)
	for i := 0; i < 4; i++ { // both members' connections up
		_, err := arbor.Call0[string](ctx, c, "whoami")
		must(t, err)
	}
	// w1's server restarts on the same address; its node stays.
	ws[1].srv.Close()
	srv := arbor.NewServer()
	must(t, arbor.Handle0(srv, "whoami", func(ctx context.Context) (string, error) { return "w1", nil }, arbor.Idempotent()))
	eventually(t, func() bool {
		_, err := srv.Listen(context.Background(), ws[1].url)
		return err == nil
	}, "w1's server to listen again on "+ws[1].url)
	t.Cleanup(func() { srv.Close() })
	time.Sleep(time.Second) // no call meanwhile: the detector now suspects w1
	// w1 answers again: within a few seconds it takes calls again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		name, err := arbor.Call0[string](ctx, c, "whoami")
		must(t, err)
		if name == "w1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("w1 answers again but got no call for 5 s (phi %.1f)", c.Phi("w1"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Whether a member's functions are idempotent comes from its catalog,
// fetched on first need within the calling context. A first fetch that
// failed (that call's context ended, the member was briefly busy) was
// remembered for good as "nothing is idempotent": that member's calls
// were never hedged, nor retried after it died mid-call.
func TestCatalogFetchFailureIsNotRemembered(t *testing.T) {
	ws := startWorkers(t, 2, nil)
	c := dialCluster(t, ws, func(cfg *ClientConfig) { cfg.Hedge.Delay = 5 * time.Millisecond })
	ctx := testContext(t)
	for _, w := range ws {
		// Connect without needing the catalog...
		_, err := arbor.Call0[string](WithIdempotent(WithMember(ctx, w.name)), c, "whoami")
		must(t, err)
		// ...then a first need of it in a call whose context has ended.
		done, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := arbor.Call0[string](WithMember(done, w.name), c, "whoami"); err == nil {
			t.Fatal("a call with an ended context succeeded")
		}
	}
	// Both members slow: every call of the idempotent "work" is hedged.
	for _, w := range ws {
		w.slow.Store(int64(50 * time.Millisecond))
	}
	for i := 0; i < 5; i++ {
		_, err := arbor.Call1[int](ctx, c, "work", i)
		must(t, err)
	}
	if _, hedges, _ := c.Counters(); hedges == 0 {
		t.Fatal("no call of an idempotent function was hedged: the members' catalogs were given up on")
	}
}

// A distributor keeps in-flight figures per member; members that come and
// go (a rolling deploy, autoscaling: new names every time) must not leave
// theirs behind, or the map grows with every member the cluster ever had.
func TestDistributorForgetsDepartedMembersStats(t *testing.T) {
	ws := startDistWorkers(t, 2, nil, nil)
	d := ws[0].dist
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("extra%d", i)
		srv := arbor.NewServer()
		must(t, arbor.Handle1(srv, "leaf+mem", func(ctx context.Context, x int) (int, error) { return x, nil }))
		_, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
		must(t, err)
		cfg := testConfigNamed(name, ws[0].node.GossipAddr())
		cfg.RPCAddrs = nil // the server's
		node, err := Join(testContext(t), srv, cfg)
		must(t, err)
		t.Cleanup(func() { node.Close(); srv.Close() })
		has := func() bool {
			for _, m := range d.view.Load().members {
				if m.name == name && m.funcs != nil {
					return true
				}
			}
			return false
		}
		eventually(t, has, name+" in the distributor's view")
		must(t, node.Leave(testContext(t)))
		srv.Close()
		eventually(t, func() bool { return !has() }, name+" out of the distributor's view")
	}
	var kept []string
	d.stats.Range(func(k, _ any) bool { kept = append(kept, k.(string)); return true })
	if len(kept) > 1 {
		t.Fatalf("the distributor keeps stats for %v; only d1 is a member", kept)
	}
}

// A member that restarts under the same name before gossip finds it
// failed (same gossip address, a new RPC port) is updated in place: the
// members stream sends its new RPC addresses under the same name. The
// client kept its record of the member, with the old addresses, and
// dialed them for as long as the member stayed.
func TestMemberNewRPCAddressIsFollowed(t *testing.T) {
	ws := startWorkers(t, 2, nil)
	c := dialCluster(t, ws, nil)
	ctx := testContext(t)
	if name, err := arbor.Call0[string](WithMember(ctx, "w1"), c, "whoami"); err != nil || name != "w1" {
		t.Fatalf("w1: %q %v", name, err)
	}
	gossip := ws[1].node.GossipAddr()
	_, port, _ := strings.Cut(gossip, "127.0.0.1:")
	ws[1].node.Close()
	ws[1].srv.Close()
	srv := arbor.NewServer()
	must(t, arbor.Handle0(srv, "whoami", func(ctx context.Context) (string, error) { return "w1 again", nil }, arbor.Idempotent()))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	must(t, err)
	cfg := testConfigNamed("w1", ws[0].node.GossipAddr())
	cfg.RPCAddrs = nil
	fmt.Sscan(port, &cfg.BindPort)
	node, err := Join(ctx, srv, cfg)
	must(t, err)
	t.Cleanup(func() { node.Close(); srv.Close() })
	eventually(t, func() bool {
		for _, m := range c.Members() {
			if m.Name == "w1" && len(m.RPCAddrs) == 1 && m.RPCAddrs[0] == l.URL() {
				return true
			}
		}
		return false
	}, "the client to see w1 at "+l.URL())
	deadline := time.Now().Add(3 * time.Second)
	for {
		name, err := arbor.Call0[string](WithMember(ctx, "w1"), c, "whoami")
		if err == nil && name == "w1 again" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("w1 at its new address %s: %q %v", l.URL(), name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
