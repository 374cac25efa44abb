package cluster

// This file holds every use of the root package, so that the client API
// rewrite touches one place.

import (
	"context"

	"github.com/arbor-rpc/arbor"
)

// Join starts gossip for the node that srv serves on and joins the
// cluster through cfg.Seeds (or starts a new cluster without seeds). The
// node advertises cfg.RPCAddrs, which are required for now; srv may be nil
// and is not used yet (its listeners will supply the addresses).
//
// Join returns once a seed answered, or fails with a *JoinError naming
// each seed and its last error after cfg.JoinTimeout, with
// ErrNameConflict if the name is taken, or with ErrConfig.
func Join(ctx context.Context, srv *arbor.Server, cfg Config) (*Node, error) {
	_ = srv
	return start(ctx, cfg)
}
