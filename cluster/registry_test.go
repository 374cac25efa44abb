package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func member(name string, st State, tags ...string) Member {
	m := Member{Name: name, State: st, Tags: map[string]string{}, RPCAddrs: []string{"tcp://" + name + ":1"}}
	for i := 0; i+1 < len(tags); i += 2 {
		m.Tags[tags[i]] = tags[i+1]
	}
	return m
}

func names(ms []Member) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ","
		}
		s += m.Name
	}
	return s
}

func TestRegistry(t *testing.T) {
	var r Registry // zero value usable
	r.Replace([]Member{
		member("c", StateAlive, "role", "worker", "zone", "b"),
		member("a", StateAlive, "role", "worker", "zone", "a"),
		member("b", StateLeaving, "role", "gateway"),
		member("gone", StateFailed, "role", "worker"),
	})
	if got := names(r.Members(Filter{})); got != "a,b,c" {
		t.Fatalf("members %s, want a,b,c (sorted, departed skipped)", got)
	}
	if got := names(r.Members(mustFilter(t, "role=worker"))); got != "a,c" {
		t.Fatalf("role=worker: %s", got)
	}
	v := r.Version()
	r.Apply(Event{Kind: EventJoined, Member: member("d", StateAlive, "role", "worker", "zone", "a")})
	r.Apply(Event{Kind: EventUpdated, Member: member("c", StateAlive, "role", "worker", "zone", "a")})
	if got := names(r.Members(mustFilter(t, "role=worker,zone=a"))); got != "a,c,d" {
		t.Fatalf("after events, role=worker,zone=a: %s", got)
	}
	r.Apply(Event{Kind: EventFailed, Member: member("a", StateFailed)})
	r.Apply(Event{Kind: EventLeft, Member: member("b", StateLeft)})
	if got := names(r.Members(Filter{})); got != "c,d" || r.Len() != 2 {
		t.Fatalf("after departures: %s", got)
	}
	if r.Version() <= v {
		t.Fatal("version did not move")
	}
	if _, ok := r.Member("a"); ok {
		t.Fatal("failed member still there")
	}
	if r.Remove("zz") {
		t.Fatal("removed a member that was not there")
	}
	buf := make([]Member, 0, 8)
	buf = r.AppendMembers(buf[:0], Filter{})
	if names(buf) != "c,d" {
		t.Fatalf("AppendMembers: %s", names(buf))
	}
}

func TestRegistryFollowsNode(t *testing.T) {
	nodes := startCluster(t, 2, func(i int, c *Config) { c.Tags = map[string]string{"role": "worker"} })
	ch, cancel := nodes[0].Subscribe()
	defer cancel()
	reg := NewRegistry()
	reg.Replace(nodes[0].Members(Filter{}))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range ch {
			if ev.Missed > 0 {
				reg.Replace(nodes[0].Members(Filter{}))
			}
			reg.Apply(ev)
		}
	}()
	n2 := startNode(t, testConfigNamed("n2", nodes[0].GossipAddr()))
	waitFor(t, 5*time.Second, func() bool { return reg.Len() == 3 }, func() string { return "registry: " + names(reg.Members(Filter{})) })
	if err := n2.SetTags(testContext(t), map[string]string{"role": "worker"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(reg.Members(mustFilter(t, "role=worker"))) == 3 },
		func() string { return fmt.Sprintf("workers: %s", names(reg.Members(mustFilter(t, "role=worker")))) })
	if err := n2.Leave(testContext(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return reg.Len() == 2 }, func() string { return "registry: " + names(reg.Members(Filter{})) })
	cancel()
	wg.Wait()
}
