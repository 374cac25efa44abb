package cluster

import (
	"sync"

	"github.com/arbor-rpc/arbor/request"
)

// Policy chooses where a request of a tree resolves, among the members
// eligible for it: alive, with its function in their catalog and the tags
// DistributeConfig.Require asks for, not already tried. Implementations
// are safe for concurrent use and fast: one is asked per request.
type Policy interface {
	// Choose returns the index in c.Eligible of the member to resolve
	// c.Request on (the one named c.Self means here).
	Choose(c Choice) int
}

// Choice is one placement question.
type Choice struct {
	// Request is the request (the root of the subtree) to place; Key is
	// its content key.
	Request *request.Node
	Key     request.Key
	// Self names this member.
	Self string
	// Eligible are the members it may go to, sorted by name (never
	// empty). Their Stats count the subtrees in flight: for other
	// members, those this member sent there; for Self, those other members
	// sent here.
	Eligible []Candidate
}

// DefaultOverload is DefaultPolicy's default bound on a member's
// subtrees in flight.
const DefaultOverload = 64

// DefaultPolicy is cache affinity with a load fallback: rendezvous
// hashing of the content key picks the owner among the eligible members,
// so the same subtree always lands on the member that has it in memory
// (and concurrent identical subtrees, wherever they were submitted, meet
// in the owner's single flight: no distributed lock); when the owner has
// more than Overload subtrees in flight, the power of two choices among
// the eligible picks a less busy one instead. The zero value is ready to
// use.
type DefaultPolicy struct {
	// Overload is the in-flight bound past which the owner is passed over
	// (DefaultOverload when zero).
	Overload int64

	once sync.Once
	p2c  *P2C // the fallback, made on first use
}

// Choose implements Policy.
func (p *DefaultPolicy) Choose(c Choice) int {
	owner := Rendezvous{}.Pick(c.Eligible, string(c.Key[:]))
	bound := p.Overload
	if bound <= 0 {
		bound = DefaultOverload
	}
	if owner < 0 || c.Eligible[owner].inflight() <= bound {
		return owner
	}
	p.once.Do(func() { p.p2c = NewP2C(nil, nil) })
	return p.p2c.Pick(c.Eligible, "")
}
