package cluster

import (
	"fmt"
	"log"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/cluster/internal/faultnet"
	"github.com/hashicorp/memberlist"
)

// rawMeta is a bare memberlist delegate that advertises whatever bytes it
// is given: a peer that does not speak this package's metadata.
type rawMeta struct {
	mu   sync.Mutex
	meta []byte
}

func (r *rawMeta) set(b []byte) { r.mu.Lock(); r.meta = b; r.mu.Unlock() }
func (r *rawMeta) NodeMeta(limit int) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.meta
}
func (r *rawMeta) NotifyMsg([]byte)                {}
func (r *rawMeta) GetBroadcasts(int, int) [][]byte { return nil }
func (r *rawMeta) LocalState(bool) []byte          { return nil }
func (r *rawMeta) MergeRemoteState([]byte, bool)   {}

func TestMalformedMetadataIgnored(t *testing.T) {
	var logs syncBuffer
	cfg := testConfigNamed("good")
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	good := startNode(t, cfg)
	ch, cancel := good.Subscribe()
	defer cancel()

	valid, err := encodeMeta(meta{rpcAddrs: []string{"tcp://127.0.0.1:9"}, tags: map[string]string{"role": "raw"}})
	if err != nil {
		t.Fatal(err)
	}
	garbage := [][]byte{
		[]byte("\xde\xad\xbe\xef garbage"),
		valid[:len(valid)-3],                                                  // truncated
		append([]byte{9}, valid[1:]...),                                       // unknown version
		append(append([]byte{}, valid[:10]...), 0xff, 0xff, 0xff, 0xff, 0x0f), // absurd address count
		append(append([]byte{}, valid...), 0),                                 // trailing byte
	}
	d := &rawMeta{meta: garbage[0]}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = "raw"
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Delegate = d
	mc.Logger = log.New(mlLogWriter{testLogger()}, "", 0)
	raw, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Shutdown()
	if _, err := raw.Join([]string{good.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "malformed metadata") },
		func() string { return "no log line about the malformed metadata: " + logs.String() })
	for i, g := range garbage[1:] {
		before := strings.Count(logs.String(), "malformed metadata")
		d.set(g)
		if err := raw.UpdateNode(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() bool { return strings.Count(logs.String(), "malformed metadata") > before },
			func() string { return fmt.Sprintf("garbage %d not logged: %s", i+1, logs.String()) })
	}
	if _, ok := good.Member("raw"); ok {
		t.Fatal("a member with malformed metadata was admitted")
	}
	// Once it advertises valid metadata, it is a member like any other.
	d.set(valid)
	if err := raw.UpdateNode(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	ev, _ := waitEvent(t, ch, 5*time.Second, is(EventJoined, "raw"), "raw node admitted")
	if ev.Member.Tags["role"] != "raw" || ev.Member.RPCAddrs[0] != "tcp://127.0.0.1:9" {
		t.Fatalf("raw node admitted as %+v", ev.Member)
	}
	// A malformed update afterwards keeps the last good view.
	d.set(garbage[0])
	if err := raw.UpdateNode(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "ignoring malformed metadata update") },
		func() string { return "malformed update not logged: " + logs.String() })
	if m, _ := good.Member("raw"); m.Tags["role"] != "raw" || m.State != StateAlive {
		t.Fatalf("after a malformed update raw is %+v", m)
	}
	t.Logf("log:\n%s", logs.String())
}

func TestPartitionHeals(t *testing.T) {
	fnet := faultnet.New()
	nodes := startCluster(t, 4, func(i int, c *Config) {
		c.Memberlist = func(mc *memberlist.Config) {
			nt := mc.Transport.(*memberlist.NetTransport)
			mc.Transport = fnet.Wrap("127.0.0.1:"+strconv.Itoa(nt.GetAutoBindPort()), nt)
		}
	})
	for i, n := range nodes {
		fnet.Assign(n.GossipAddr(), i/2) // {n0, n1} and {n2, n3}
	}
	var chans []<-chan Event
	for _, n := range nodes {
		ch, cancel := n.Subscribe()
		defer cancel()
		chans = append(chans, ch)
	}

	fnet.Partition()
	began := time.Now()
	for i, n := range nodes {
		for j := range nodes {
			if i/2 == j/2 {
				continue
			}
			other := nodes[j].Name()
			waitFor(t, 15*time.Second, func() bool {
				m, _ := n.Member(other)
				return m.State == StateFailed || m.State == StateSuspect
			}, func() string { m, _ := n.Member(other); return n.Name() + " sees " + other + " as " + m.State.String() })
		}
		// and its own side as alive
		for j := range nodes {
			if i/2 == j/2 {
				if m, _ := n.Member(nodes[j].Name()); m.State != StateAlive {
					t.Fatalf("%s sees %s, on its side of the partition, as %v", n.Name(), nodes[j].Name(), m.State)
				}
			}
		}
	}
	t.Logf("partition seen by all after %v (%d packets and dials dropped)", time.Since(began).Round(time.Millisecond), fnet.Dropped())

	fnet.Heal()
	began = time.Now()
	waitConverged(t, nodes, 4)
	t.Logf("healed to one view after %v", time.Since(began).Round(time.Millisecond))
	// Each node saw the other side fail, then recover, in that order.
	for i, ch := range chans {
		want := map[string]bool{}
		for j := range nodes {
			if i/2 != j/2 {
				want[nodes[j].Name()] = true
			}
		}
		failed := map[string]bool{}
		waitEvent(t, ch, 5*time.Second, func(ev Event) bool {
			switch ev.Kind {
			case EventFailed:
				failed[ev.Member.Name] = true
			case EventRecovered:
				if !failed[ev.Member.Name] {
					t.Errorf("%s: %s recovered before failing", nodes[i].Name(), ev.Member.Name)
				}
				delete(want, ev.Member.Name)
			}
			return len(want) == 0
		}, fmt.Sprintf("%s: recovery of the other side", nodes[i].Name()))
	}
}
