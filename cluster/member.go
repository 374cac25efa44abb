package cluster

import (
	"fmt"
	"time"
)

// State is where a member stands, as seen by one node.
type State uint8

const (
	// StateAlive: the member answers gossip probes.
	StateAlive State = iota
	// StateSuspect: gossip still lists the member, but the failure
	// detector given in Config.Detector (fed by RPC keep-alives) has lost
	// confidence in it. memberlist keeps its own suspicion internal, so
	// without a detector a member goes from Alive to Failed directly.
	StateSuspect
	// StateLeaving: the member announced that it is leaving (Node.Leave
	// started); it still answers, but should get no new calls.
	StateLeaving
	// StateLeft: the member left gracefully.
	StateLeft
	// StateFailed: the member stopped answering without leaving (crash,
	// freeze, partition). It may come back (EventRecovered).
	StateFailed
)

var stateNames = [...]string{"alive", "suspect", "leaving", "left", "failed"}

// String returns the state's lower-case name ("alive", "failed", ...).
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", s)
}

// InCluster reports whether s is a state of a current member (alive,
// suspect or leaving) rather than of a departed one.
func (s State) InCluster() bool { return s <= StateLeaving }

// Member is a snapshot of one node of the cluster.
type Member struct {
	// Name is the member's unique node name.
	Name string
	// GossipAddr is the host:port it gossips on.
	GossipAddr string
	// RPCAddrs are the Arbor addresses it serves on (transport URLs such
	// as "tcp://10.0.0.5:7000").
	RPCAddrs []string
	// Tags are its tags. Shared between snapshots: do not modify.
	Tags map[string]string
	// Load is the figure it last advertised with Node.SetLoad.
	Load float64
	// State is its state, and Since when this node saw it enter it.
	State State
	Since time.Time
}

// EventKind says what happened to a member.
type EventKind uint8

const (
	// EventJoined: a member appeared (including the local node itself,
	// first of all, and a member that rejoins after leaving).
	EventJoined EventKind = iota + 1
	// EventUpdated: a member's tags, load or RPC addresses changed.
	EventUpdated
	// EventSuspect: the failure detector lost confidence in a member.
	EventSuspect
	// EventRecovered: a failed or suspect member is seen alive again.
	EventRecovered
	// EventLeaving: a member announced it is leaving.
	EventLeaving
	// EventLeft: a member left gracefully.
	EventLeft
	// EventFailed: a member stopped answering without leaving.
	EventFailed
)

var eventNames = [...]string{"", "joined", "updated", "suspect", "recovered", "leaving", "left", "failed"}

// String returns the kind's lower-case name ("joined", "left", ...).
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k > 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Event is one change of the membership, with the member as it is after
// the change.
type Event struct {
	Kind   EventKind
	Member Member
	// Missed is the number of events this subscriber lost just before
	// this one because it read too slowly. A subscriber that sees
	// Missed > 0 should resynchronize from Node.Members.
	Missed uint64
}

// String describes the event for logs: kind, member and any loss.
func (e Event) String() string {
	s := e.Kind.String() + " " + e.Member.Name
	if e.Missed > 0 {
		s += fmt.Sprintf(" (after %d missed)", e.Missed)
	}
	return s
}
