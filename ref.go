package arbor

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

// Ref is a reference to a service (a capability): one the peer exported,
// one promised by a call that has not returned yet (PipelineRef), or one
// of this side's own services passed back to it. A Ref is a Caller: call
// its methods with the same typed helpers as functions (CallN, GoN,
// streams), and they go through the interceptors and options of the
// Client it came from.
//
// Close releases the reference; the peer frees the service once every
// reference to it is released or the connection closes. A Ref dropped
// without Close is released when the garbage collector finds it, with a
// warning in the client's log: that is a safety net, not the way to do it.
type Ref struct {
	cc      *conn.Conn
	target  wire.Target
	owner   *Client  // whose interceptors apply; nil on a server
	local   *Service // set for a reference to one of this side's own services
	promise *promise // a promised capability: its answer stays retained while the Ref lives
	err     error    // why the reference is unusable
	// state is shared by copies of the Ref (a Ref decoded into a struct
	// field is a copy): they are one reference, closed once.
	state *refState
}

// refState is what copies of a Ref share. The GC cleanup runs when it is
// unreachable, that is when every copy is; what the cleanup needs is in
// rel, apart, so that it does not keep refState reachable.
type refState struct {
	closed atomic.Bool
	rel    *refRelease // imported references only
}

// refRelease releases an imported reference once.
type refRelease struct {
	done   atomic.Bool
	cc     *conn.Conn
	id     uint64
	logger *slog.Logger
}

func (r *refRelease) release() {
	if r != nil && r.done.CompareAndSwap(false, true) {
		r.cc.ReleaseExport(r.id, 1)
	}
}

// newImport makes a reference to export id of the peer on cc.
func newImport(cc *conn.Conn, id uint64, owner *Client, logger *slog.Logger) *Ref {
	rel := &refRelease{cc: cc, id: id, logger: logger}
	st := &refState{rel: rel}
	runtime.AddCleanup(st, func(rel *refRelease) {
		if !rel.done.Load() {
			rel.logger.Warn("arbor: a capability reference was garbage-collected without Close; releasing it", "export", rel.id)
			rel.release()
		}
	}, rel)
	return &Ref{cc: cc, target: wire.Target{Kind: wire.TargetExport, ID: id}, owner: owner, state: st}
}

// localRef is a reference to one of this side's own services.
func localRef(svc *Service) *Ref { return &Ref{local: svc, state: &refState{}} }

// failedRef is a reference that fails every call with err.
func failedRef(err error) *Ref { return &Ref{err: err, state: &refState{}} }

// Close releases the reference. Calls on it afterwards fail with
// FailedPrecondition. Closing twice is harmless.
func (r *Ref) Close() error {
	if r == nil || r.state == nil || !r.state.closed.CompareAndSwap(false, true) {
		return nil
	}
	if r.promise != nil { // the answer holding the capability may go
		r.promise.releaseWhenDone()
	}
	r.state.rel.release()
	return nil
}

// usable reports why calls on r cannot be made, or nil.
func (r *Ref) usable(method string) error {
	switch {
	case r == nil:
		return Errorf(FailedPrecondition, "call %q on a nil reference", method)
	case r.err != nil:
		return r.err
	case r.state == nil || r.cc == nil && r.local == nil:
		return Errorf(FailedPrecondition, "call %q on a zero reference (references come from calls, not literals)", method)
	case r.state.closed.Load():
		return Errorf(FailedPrecondition, "call %q on a closed reference", method)
	}
	return nil
}

// Call implements Caller: it calls method req.ID of the referenced
// service, through the interceptors of the Client the reference came
// from.
func (r *Ref) Call(ctx context.Context, req *Request) (*Response, error) {
	if err := r.usable(req.ID); err != nil {
		return nil, err
	}
	req.Target = r
	switch {
	case r.owner != nil:
		return r.owner.Call(ctx, req)
	case r.local != nil: // one of this side's own services: no round trip
		return callLocal(ctx, r.local, req)
	}
	return sendOn(ctx, r.cc, req, nil)
}

// PipelineRef returns a reference to the capability that p's call will
// return (or, for a Field promise, that the field will hold), usable at
// once: calls on it are sent immediately and the server runs them when
// the capability exists, in the order they were made. Close releases p's
// retained answer.
func PipelineRef(p *Promise[*Ref]) *Ref {
	if p == nil || p.promise == nil {
		return failedRef(Errorf(FailedPrecondition, "PipelineRef of a nil promise"))
	}
	if p.err != nil {
		return failedRef(p.err)
	}
	p.pipelined.Store(true) // the answer must stay retained for calls on the target
	path := encodePath(p.path)
	return &Ref{cc: p.cc, target: wire.Target{Kind: wire.TargetAnswer, ID: p.async.ID(), Path: path},
		owner: p.owner, promise: p.promise, state: &refState{}}
}
