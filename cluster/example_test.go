package cluster_test

import (
	"context"
	"fmt"
	"time"

	"github.com/arbor-rpc/arbor/cluster"
)

// Two nodes on loopback form a cluster; the second finds the first's
// tags through gossip.
func ExampleJoin() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := cluster.Join(ctx, nil, cluster.Config{
		Name:     "worker-1",
		BindPort: 0, // any free port; GossipAddr says which
		RPCAddrs: []string{"tcp://127.0.0.1:7001"},
		Tags:     map[string]string{"role": "worker", "zone": "a"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer first.Close()
	second, err := cluster.Join(ctx, nil, cluster.Config{
		Name:     "gateway-1",
		Seeds:    []string{first.GossipAddr()},
		RPCAddrs: []string{"tcp://127.0.0.1:7002"},
		Tags:     map[string]string{"role": "gateway"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Leave(ctx)

	workers, _ := cluster.ParseFilter("role=worker")
	for len(second.Members(workers)) == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	for _, m := range second.Members(workers) {
		fmt.Println(m.Name, m.State, m.RPCAddrs)
	}
	// Output: worker-1 alive [tcp://127.0.0.1:7001]
}

func ExampleParseFilter() {
	f, err := cluster.ParseFilter("role=worker, gpu")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(f.Match(map[string]string{"role": "worker", "gpu": "a100"}))
	fmt.Println(f.Match(map[string]string{"role": "worker"}))
	_, err = cluster.ParseFilter("role=worker,,zone=a")
	fmt.Println(err)
	// Output:
	// true
	// false
	// cluster: bad tag filter "role=worker,,zone=a": term 2 at byte 12 (""): empty term
}

func ExamplePhiDetector() {
	d := cluster.NewPhiDetector(cluster.DefaultPhiConfig())
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 50 { // a heartbeat every 100 ms
		_ = d.Heartbeat("peer", at)
		at = at.Add(100 * time.Millisecond)
	}
	last := at.Add(-100 * time.Millisecond)
	for _, silence := range []time.Duration{100, 200, 300, 400} {
		now := last.Add(silence * time.Millisecond)
		fmt.Printf("%v of silence: phi %.1f, suspect %v\n", silence*time.Millisecond, d.Phi("peer", now), d.Suspect("peer", now))
	}
	// Output:
	// 100ms of silence: phi 0.3, suspect false
	// 200ms of silence: phi 1.6, suspect false
	// 300ms of silence: phi 4.7, suspect false
	// 400ms of silence: phi 10.8, suspect true
}

// Rendezvous hashing sends a key to the same member from every client,
// whatever the order of its candidate list.
func ExampleRendezvous() {
	cands := []cluster.Candidate{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	var b cluster.Balancer = cluster.Rendezvous{}
	reordered := []cluster.Candidate{cands[2], cands[0], cands[1]}
	first := cands[b.Pick(cands, "user:42")].Name
	again := reordered[b.Pick(reordered, "user:42")].Name
	fmt.Println(first == again)
	// Output: true
}

// P2C, the choice for calls without affinity, avoids slow and busy
// members.
func ExampleP2C() {
	now := time.Now()
	fast, slow := cluster.NewStats(0), cluster.NewStats(0)
	fast.Observe(2*time.Millisecond, now)
	slow.Observe(50*time.Millisecond, now)
	cands := []cluster.Candidate{{Name: "fast", Stats: fast}, {Name: "slow", Stats: slow}}
	b := cluster.NewP2C(nil, nil)
	i := b.Pick(cands, "")
	cands[i].Stats.Start()                              // the caller records the call...
	cands[i].Stats.Done(3*time.Millisecond, time.Now()) // ...and its end
	fmt.Println(cands[i].Name)
	// Output: fast
}
