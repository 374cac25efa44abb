// Package cluster is Arbor's cluster membership: nodes find each other by
// gossip (SWIM, on hashicorp/memberlist), advertise their RPC addresses,
// tags and load, and see each other join, change, leave gracefully or
// fail. It also holds the parts a cluster client builds on: a phi-accrual
// failure detector (PhiDetector), a member Registry for processes that do
// not gossip, tag filters, and load balancers (round robin, random, least
// connections, power of two choices over peak-EWMA latency, rendezvous
// hashing).
//
// The cluster client (Dial, Client) is an arbor.Caller over the members:
// it follows the membership through any member's built-in members stream
// (it does not gossip), keeps one connection per member it uses, picks a
// member per call (tags, balancer, the failure detector fed by the
// connections' heartbeats), retries refused calls elsewhere and idempotent
// ones lost in flight within a retry budget, and hedges slow idempotent
// calls. Per-call options travel in the context (WithTags, WithKey,
// WithBalancer, WithIdempotent, WithMember).
//
//	srv := arbor.NewServer() // register functions, Listen
//	node, err := cluster.Join(ctx, srv, cfg) // gossip beside it
//
//	c, err := cluster.Dial(ctx, "tcp://10.0.0.1:7450")
//	v, err := arbor.Call1[int](cluster.WithTags(ctx, "role=worker"), c, "work", 21)
//
// Distribute makes a member resolve request trees across the cluster: the
// engine that package tree enabled on its server asks, per request, where
// it resolves; the answer is a member whose catalog has the function (and
// the tags DistributeConfig.Require names), the same subtree always on the
// same member (rendezvous hashing of its content key, so the owner's cache
// and single flight serve every member), a less busy one when that member
// is overloaded (Policy, DefaultPolicy), and here for arbor.Local
// functions. Subtrees travel over the built-in stream ResolveID, which
// carries their status changes back (a tree's status names the member of
// each request); a member that dies mid-subtree has it resolved elsewhere.
//
// It is not a gossip protocol (memberlist is), and not a consensus
// system: membership is eventually consistent, and two nodes may briefly
// disagree about who is alive.
package cluster
