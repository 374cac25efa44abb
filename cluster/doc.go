// Package cluster is Arbor's cluster membership: nodes find each other by
// gossip (SWIM, on hashicorp/memberlist), advertise their RPC addresses,
// tags and load, and see each other join, change, leave gracefully or
// fail. It also holds the parts a cluster client builds on: a phi-accrual
// failure detector (PhiDetector), a member Registry for processes that do
// not gossip, tag filters, and load balancers (round robin, random, least
// connections, power of two choices over peak-EWMA latency, rendezvous
// hashing).
//
// It is not a gossip protocol (memberlist is), not a client: the client
// that calls members, fails over, retries and hedges lives above it, and
// not a consensus system: membership is eventually consistent, and two
// nodes may briefly disagree about who is alive.
package cluster
