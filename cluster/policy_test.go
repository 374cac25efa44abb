package cluster

import (
	"testing"

	"github.com/arbor-rpc/arbor/request"
)

// DefaultPolicy sends a key to its rendezvous owner, always the same one,
// until the owner has more than Overload subtrees in flight; then to a
// less busy member.
func TestDefaultPolicyAffinityThenLoad(t *testing.T) {
	cands := []Candidate{{Name: "a", Stats: NewStats(DefaultDecay)}, {Name: "b", Stats: NewStats(DefaultDecay)},
		{Name: "c", Stats: NewStats(DefaultDecay)}, {Name: "d", Stats: NewStats(DefaultDecay)}}
	p := &DefaultPolicy{Overload: 4}
	n := request.New("leaf+mem", 1)
	c := Choice{Request: n, Key: n.Key(), Self: "a", Eligible: cands}
	owner := p.Choose(c)
	owners := map[int]bool{}
	for i := range 64 {
		if p.Choose(c) != owner {
			t.Fatal("the owner changed")
		}
		m := request.New("leaf+mem", i)
		owners[p.Choose(Choice{Request: m, Key: m.Key(), Self: "a", Eligible: cands})] = true
	}
	if len(owners) != 4 {
		t.Errorf("64 keys owned by %d of 4 members", len(owners))
	}
	for range 5 {
		cands[owner].Stats.Start()
	}
	for range 32 {
		if p.Choose(c) == owner {
			t.Fatalf("overloaded owner %s chosen (in flight %d > %d)", cands[owner].Name, cands[owner].Stats.Inflight(), p.Overload)
		}
	}
}
