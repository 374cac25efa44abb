package tree

// This file holds the pushed status of submitted trees: the built-in
// server stream arbor.watch and its typed client, WatchRequest. Cradle
// polls its status tree every 1-100 ms; a watcher here is sent each change
// as it happens, over one call.

import (
	"context"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/resolve"
)

// WatchID streams the status changes of a submitted tree:
// arbor.watch(id) stream WatchEvent. The first message is the whole
// status tree; then one per change of one request; the last says the tree
// is done.
const WatchID = "arbor.watch"

// The kinds of WatchEvent.
const (
	// WatchStatus: Status is the whole status tree (the first event, and
	// again after the watcher fell behind and lost changes).
	WatchStatus = "status"
	// WatchNode: Status is one request that changed, without its
	// subrequests (Status.Path says which).
	WatchNode = "node"
	// WatchDone: the tree finished; Err is its error, "" on success. The
	// stream ends after it.
	WatchDone = "done"
)

// WatchEvent is one message of a watch stream.
type WatchEvent struct {
	Kind   string          `msgpack:"kind" json:"kind"`
	Status *resolve.Status `msgpack:"status,omitempty" json:"status,omitempty"`
	Err    string          `msgpack:"err,omitempty" json:"err,omitempty"`
}

// WatchStream is the caller's side of a watch: Recv events until io.EOF
// (after the WatchDone event); Close to stop early.
type WatchStream = arbor.ServerStream[WatchEvent]

// WatchRequest streams the status changes of the submitted tree id: its
// whole status tree first, then each request's start, finish or failure
// as it happens (a cluster's remote subtrees included), then WatchDone.
func WatchRequest(ctx context.Context, c arbor.Caller, id string) (*WatchStream, error) {
	return arbor.CallServerStream[WatchEvent](ctx, c, WatchID, id)
}

// registerWatch registers WatchID on srv over engine e.
func registerWatch(srv *arbor.Server, e *resolve.Engine) error {
	reg, _ := builtin.Registrar(srv).(arbor.Registrar)
	return arbor.HandleServerStream(reg, WatchID, func(ctx context.Context, id string, out *arbor.Sender[WatchEvent]) error {
		return watch(ctx, e, id, out)
	}, arbor.Idempotent())
}

// watch subscribes first and takes the snapshot second, so that no change
// falls between the two (a change may then repeat what the snapshot
// shows, which is harmless: it is the latest state).
func watch(ctx context.Context, e *resolve.Engine, id string, out *arbor.Sender[WatchEvent]) error {
	sub := e.Subscribe(resolve.SubscribeOptions{Tree: id, Buffer: 4096})
	defer sub.Close()
	snapshot := func() error {
		st, err := e.Status(id)
		if err != nil {
			return err
		}
		return out.Send(WatchEvent{Kind: WatchStatus, Status: st})
	}
	done, err := e.Done(id)
	if err != nil {
		return err
	}
	st, err := e.Status(id)
	if err != nil {
		return err
	}
	if st.State.Done() {
		// Finished, its done channel about to close. The engine publishes
		// EventDone before it closes done, so that event may have gone out
		// before this subscription began: wait for done instead, and show
		// the final status. (A root not done in this status, read after
		// subscribing, means its EventDone is still to come.)
		select {
		case <-done:
		case <-ctx.Done():
			return nil
		}
		if st, err = e.Status(id); err != nil {
			return err
		}
	}
	if err := out.Send(WatchEvent{Kind: WatchStatus, Status: st}); err != nil {
		return err
	}
	finished := func() error {
		msg := ""
		if _, err := e.Result(ctx, id); err != nil {
			msg = err.Error()
		}
		return out.Send(WatchEvent{Kind: WatchDone, Err: msg})
	}
	select {
	case <-done: // over before the watch began: nothing will change
		return finished()
	default:
	}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the watcher went away
			}
			return arbor.Errorf(arbor.Unavailable, "%s: the engine closed", WatchID)
		}
		if ev.Missed > 0 {
			if err := snapshot(); err != nil {
				return err
			}
		}
		switch ev.Kind {
		case resolve.EventNode:
			if err := out.Send(WatchEvent{Kind: WatchNode, Status: ev.Status}); err != nil {
				return err
			}
		case resolve.EventDone:
			return out.Send(WatchEvent{Kind: WatchDone, Err: ev.Err})
		case resolve.EventDropped:
			return arbor.Errorf(arbor.NotFound, "request tree %q was released while being watched", id)
		}
	}
}
