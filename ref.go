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
// hold, apart, so that it does not keep refState reachable.
type refState struct {
	closed atomic.Bool
	hold   *refHold // imported references only
}

// refHold is one handle on an import: a Ref and the duplicates made of it
// (a reference passed to an in-process call, or held by a proxy) are
// handles on one import, released to the peer when the last one goes.
type refHold struct {
	done atomic.Bool
	imp  *importRef
}

func (h *refHold) release() {
	if h != nil && h.done.CompareAndSwap(false, true) {
		h.imp.drop()
	}
}

// importRef counts the handles on one reference to export id of the peer
// on cc, and releases it there when the count reaches zero.
type importRef struct {
	handles atomic.Int64
	cc      *conn.Conn
	id      uint64
	logger  *slog.Logger
}

func (i *importRef) drop() {
	if i.handles.Add(-1) == 0 {
		i.cc.ReleaseExport(i.id, 1)
	}
}

// newImport makes a reference to export id of the peer on cc.
func newImport(cc *conn.Conn, id uint64, owner *Client, logger *slog.Logger) *Ref {
	imp := &importRef{cc: cc, id: id, logger: logger}
	return &Ref{cc: cc, target: wire.Target{Kind: wire.TargetExport, ID: id}, owner: owner, state: newHandle(imp)}
}

// newHandle returns the state of one more handle on imp, released by the
// garbage collector if it is dropped without Close.
func newHandle(imp *importRef) *refState {
	imp.handles.Add(1)
	h := &refHold{imp: imp}
	st := &refState{hold: h}
	runtime.AddCleanup(st, func(h *refHold) {
		if !h.done.Load() {
			h.imp.logger.Warn("arbor: a capability reference was garbage-collected without Close; releasing it", "export", h.imp.id)
			h.release()
		}
	}, h)
	return st
}

// dup returns another handle on the reference r names, closed on its own:
// what an in-process callee or a proxy holds while the caller may close
// r. r must be usable.
func (r *Ref) dup() *Ref {
	d := &Ref{cc: r.cc, target: r.target, owner: r.owner, local: r.local, err: r.err}
	switch {
	case r.state.hold != nil:
		d.state = newHandle(r.state.hold.imp)
	case r.promise != nil:
		// A promised capability: the duplicate keeps the answer retained
		// too; the answer goes when both are closed.
		d.promise = r.promise
		r.promise.retain()
		d.state = &refState{}
	default:
		d.state = &refState{}
	}
	return d
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
	r.state.hold.release()
	return nil
}

// usable reports why r cannot be used (called, with method, or passed
// in a call when method is ""), or nil.
func (r *Ref) usable(method string) error {
	why := ""
	switch {
	case r == nil:
		why = "a nil reference"
	case r.err != nil:
		return r.err
	case r.state == nil || r.cc == nil && r.local == nil:
		why = "a zero reference (references come from calls, not literals)"
	case r.state.closed.Load():
		why = "a closed reference"
	default:
		return nil
	}
	if method == "" {
		return Errorf(FailedPrecondition, "cannot pass %s in a call", why)
	}
	return Errorf(FailedPrecondition, "call %q on %s", method, why)
}

// plain reports whether calls on r may take the typed helpers' fast
// path: a usable reference on a connection, with no interceptors.
func (r *Ref) plain() bool {
	return r != nil && r.cc != nil && r.local == nil && r.err == nil && r.state != nil &&
		!r.state.closed.Load() && (r.owner == nil || r.owner.plain())
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
	if p.local != nil {
		return failedRef(Errorf(Unimplemented, "PipelineRef of a promise of an in-process call (on a capability passed back to its exporter): Wait for it instead"))
	}
	p.pipelined.Store(true) // the answer must stay retained for calls on the target
	p.retain()
	path := encodePath(p.path)
	return &Ref{cc: p.cc, target: wire.Target{Kind: wire.TargetAnswer, ID: p.async.ID(), Path: path},
		owner: p.owner, promise: p.promise, state: &refState{}}
}
