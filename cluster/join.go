package cluster

// This file is where a Node meets its arbor.Server: the addresses it
// advertises and the built-in function that tells clients who is in the
// cluster.

import (
	"context"
	"fmt"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/builtin"
)

// MembersID is the built-in server stream every member serves: the
// cluster's members as this node sees them (a []MemberInfo), at once and
// again after every change, so that clients follow the membership
// without joining the gossip.
const MembersID = "arbor.cluster.members"

// MemberInfo is a member as the members stream sends it.
type MemberInfo struct {
	Name     string            `msgpack:"name" json:"name"`
	RPCAddrs []string          `msgpack:"rpc" json:"rpc"`
	Tags     map[string]string `msgpack:"tags,omitempty" json:"tags,omitempty"`
	Load     float64           `msgpack:"load,omitempty" json:"load,omitempty"`
	State    string            `msgpack:"state" json:"state"`
}

// Join starts gossip for the node that srv serves on and joins the
// cluster through cfg.Seeds (or starts a new cluster without seeds). The
// node advertises cfg.RPCAddrs, or, when that is empty, the addresses
// srv listens on (call Join after srv.Listen). It registers MembersID on
// srv so that cluster clients (Dial) can follow the membership.
//
// Join returns once a seed answered, or fails with a *JoinError naming
// each seed and its last error after cfg.JoinTimeout, with
// ErrNameConflict if the name is taken, or with ErrConfig.
func Join(ctx context.Context, srv *arbor.Server, cfg Config) (*Node, error) {
	if len(cfg.RPCAddrs) == 0 && srv != nil {
		cfg.RPCAddrs = srv.URLs()
	}
	n, err := start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		reg, _ := builtin.Registrar(srv).(arbor.Registrar)
		if err := arbor.HandleServerStream(reg, MembersID, n.serveMembers, arbor.Idempotent()); err != nil {
			n.Close()
			return nil, fmt.Errorf("cluster: registering %s: %w", MembersID, err)
		}
	}
	return n, nil
}

// membersCoalesce is how long the members stream waits after a change for
// more before it sends: a cluster starting up changes many times a second.
const membersCoalesce = 20 * time.Millisecond

// serveMembers sends the member list now and after every change until the
// caller goes away.
func (n *Node) serveMembers(ctx context.Context, _ struct{}, out *arbor.Sender[[]MemberInfo]) error {
	events, cancel := n.Subscribe()
	defer cancel()
	for {
		if err := out.Send(n.memberInfos()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				return arbor.Errorf(arbor.Unavailable, "cluster node %s closed", n.Name())
			}
		}
		t := time.NewTimer(membersCoalesce)
	drain:
		for {
			select {
			case <-events:
			case <-t.C:
				break drain
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
	}
}

func (n *Node) memberInfos() []MemberInfo {
	ms := n.Members(Filter{})
	out := make([]MemberInfo, 0, len(ms))
	for _, m := range ms {
		out = append(out, MemberInfo{Name: m.Name, RPCAddrs: m.RPCAddrs, Tags: m.Tags, Load: m.Load, State: m.State.String()})
	}
	return out
}
