package conn

import (
	"context"
	"fmt"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// answer is a retained result of a call the peer made with FlagRetain:
// later pipelined calls read it as an argument until the peer releases it.
type answer struct {
	done   chan struct{}
	result []byte
	caps   []wire.CapDescriptor
	err    *status.Error
	// pins counts admitted calls that will read this answer; a RELEASE
	// that arrives while pinned only marks it, and the last unpin drops it.
	pins     int
	released bool
	counted  int // bytes of result counted in retainedBytes (smu)
	// depth is the length of the promise chain that ends here: 1 for a
	// call that used no answers.
	depth int
	// paths are the targets in this answer calls were ticketed for (the
	// encoded paths), forgotten with it.
	paths []string
}

// Async is an outgoing call whose answer is awaited later (a promise).
type Async struct {
	c  *Conn
	id uint64
	cl *call
	// stop ends the context watch that cancels the call.
	stop func() bool
	// localCancel cancels an in-process call (NewLocalAsync).
	localCancel func()
}

// ID is the call's id: pipelined calls reference it.
func (a *Async) ID() uint64 { return a.id }

// Conn is the connection the call runs on; only calls on it can reference
// it.
func (a *Async) Conn() *Conn { return a.c }

// Done is closed when the answer has arrived.
func (a *Async) Done() <-chan struct{} { return a.cl.doneCh }

// OnDone arranges for fn to run once, with the call's error (nil: it
// succeeded), when the answer is in: at once if it is already. fn runs
// on the goroutine that completed the call (the connection's reader, for
// most), so it must be quick and must never block.
func (a *Async) OnDone(fn func(err error)) {
	cl := a.cl
	cl.hmu.Lock()
	if !cl.completed {
		cl.hooks = append(cl.hooks, fn)
		cl.hmu.Unlock()
		return
	}
	cl.hmu.Unlock()
	fn(cl.err)
}

// Result returns the encoded result or the error; valid after Done.
func (a *Async) Result() ([]byte, error) {
	<-a.cl.doneCh
	return a.cl.buf, a.cl.err
}

// Caps is the result's capability table; valid after Done.
func (a *Async) Caps() []wire.CapDescriptor {
	<-a.cl.doneCh
	return a.cl.caps
}

// Go sends a call without waiting for its answer. With o.Retain, the peer
// keeps the answer for pipelined calls until Release. Cancelling ctx
// before the answer arrives sends CANCEL.
func (c *Conn) Go(ctx context.Context, o *Outgoing) (*Async, error) {
	cl := &call{done: make(chan struct{}, 1), doneCh: make(chan struct{})}
	if c.cfg.Observer != nil {
		cl.ob = &cl.obs
		oc := *o
		c.startOutgoing(ctx, cl.ob, CallAsync, &oc)
		o = &oc
	}
	id, err := c.start(ctx, o, cl, nil, true) // promises come in batches: let them share a write
	if err != nil {
		if cl.ob != nil {
			cl.ob.end(c.cfg.Observer, 0, err)
		}
		return nil, err
	}
	a := &Async{c: c, id: id, cl: cl}
	a.stop = context.AfterFunc(ctx, func() { a.cancel(ctx.Err()) })
	return a, nil
}

// Cancel abandons the call if its answer has not arrived: the peer's
// handler sees its context cancelled.
func (a *Async) Cancel() { a.cancel(context.Canceled) }

// NewLocalAsync returns the Async of a call that runs in process (no
// connection: Conn is nil, ID 0, Release does nothing) and the function
// that completes it; Cancel calls cancel.
func NewLocalAsync(cancel func()) (*Async, func(result []byte, err error)) {
	a := &Async{cl: &call{doneCh: make(chan struct{})}, localCancel: cancel}
	return a, func(result []byte, err error) {
		a.cl.buf = result
		a.cl.complete(err)
	}
}

func (a *Async) cancel(cause error) {
	if a.c == nil {
		if a.localCancel != nil {
			a.localCancel()
		}
		return
	}
	a.c.cmu.Lock()
	mine := a.c.calls.take(a.id) != nil
	if mine {
		a.c.abandonLocked(a.id, a.cl.unserved)
	}
	a.c.cmu.Unlock()
	if mine {
		a.c.sendCancel(a.id, cause)
		a.cl.complete(status.FromError(cause))
	}
}

// Release tells the peer it may drop the retained answer.
func (a *Async) Release() {
	if a.stop != nil {
		a.stop()
	}
	if a.c != nil {
		a.c.sendRelease(a.id, 0)
	}
}

// Forget stops watching the call's context without releasing the answer:
// the caller no longer cancels it when ctx ends.
func (a *Async) Forget() {
	if a.stop != nil {
		a.stop()
	}
}

// retain registers the answer slot of a retained incoming call; smu held.
func (c *Conn) retainLocked(id uint64, depth int) error {
	if len(c.answers) >= int(c.cfg.MaxRetained) {
		return fmt.Errorf("too many retained answers on this connection (limit %d): release promises", c.cfg.MaxRetained)
	}
	c.answers[id] = &answer{done: make(chan struct{}), depth: depth}
	return nil
}

// chainDepthLocked is the length of the promise chain a call with these
// answer references would end; smu held.
func (c *Conn) chainDepthLocked(refs []uint64) int {
	d := 0
	for _, id := range refs {
		if a := c.answers[id]; a != nil {
			d = max(d, a.depth)
		}
	}
	return d + 1
}

// settle stores a retained call's outcome. Retained results are bounded
// in bytes too: one over the budget is replaced by a ResourceExhausted
// error that its dependents see.
func (c *Conn) settle(id uint64, out []byte, caps []wire.CapDescriptor, err error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	a := c.answers[id]
	if a == nil {
		return // released already
	}
	n := len(out) + 16*len(caps)
	if err == nil {
		if refusal := c.retainRefusal(n); refusal != nil {
			err = refusal
		}
	}
	if err != nil {
		a.err = status.FromError(err)
	} else {
		a.result = append([]byte(nil), out...)
		a.caps = append([]wire.CapDescriptor(nil), caps...)
		a.counted += n // on top of the paths of targets in it
		c.retainAdd(n)
	}
	close(a.done)
}

// retainRefusal is the error that refuses n more retained bytes, over
// this connection's MaxRetainedBytes or the shared RetainBudget, or nil
// when they fit; smu held.
func (c *Conn) retainRefusal(n int) *status.Error {
	if c.retainedBytes+n > int(c.cfg.MaxRetainedBytes) {
		return status.Errorf(status.ResourceExhausted, "retained answers on this connection exceed %d bytes: release promises", c.cfg.MaxRetainedBytes)
	}
	if rb := c.cfg.RetainBudget; rb != nil && !c.retainClosed {
		if u := rb.Used(); u != 0 && u+int64(n) > rb.Limit() {
			return status.Errorf(status.ResourceExhausted, "retained answers of all connections exceed the server's %d bytes: release promises", rb.Limit())
		}
	}
	return nil
}

// retainAdd and retainSub count retained bytes, on the connection and in
// the shared RetainBudget (until the connection closed); smu held.
// (Checked by retainRefusal first, taken without a check: admissions on
// other connections may overshoot the shared bound by what they add at
// once, a path or a result each.)
func (c *Conn) retainAdd(n int) {
	c.retainedBytes += n
	if rb := c.cfg.RetainBudget; rb != nil && !c.retainClosed {
		rb.tryTake(int64(n), true)
	}
}

func (c *Conn) retainSub(n int) {
	c.retainedBytes -= n
	if rb := c.cfg.RetainBudget; rb != nil && !c.retainClosed {
		rb.give(int64(n))
	}
}

// closeRetained gives the shared RetainBudget back what a closed
// connection's answers held: nothing reaches them any more.
func (c *Conn) closeRetained() {
	if c.cfg.RetainBudget == nil {
		return
	}
	c.smu.Lock()
	if !c.retainClosed {
		c.retainClosed = true
		c.cfg.RetainBudget.give(int64(c.retainedBytes))
	}
	c.smu.Unlock()
}

// dropAnswerLocked forgets a retained answer; smu held. One still
// pending is failed too: settle no longer finds it, and a call that
// looked it up without a pin would otherwise wait for it forever.
func (c *Conn) dropAnswerLocked(id uint64) {
	if a := c.answers[id]; a != nil {
		c.retainSub(a.counted)
		delete(c.answers, id)
		select {
		case <-a.done:
		default:
			a.err = status.Errorf(status.FailedPrecondition, "call %d's answer was released before it came", id)
			close(a.done)
		}
		if len(a.paths) > 0 {
			for _, p := range a.paths {
				delete(c.tickets, targetKey{kind: wire.TargetAnswer, id: id, path: p})
			}
			c.dropped = append(c.dropped, id)
		}
	}
}

// AnswerForgetter is implemented by handlers that keep state per call
// target: AnswerForgotten names retained answers, once targets of calls,
// that are gone (no call can reach them any more).
type AnswerForgetter interface {
	AnswerForgotten(c *Conn, ids []uint64)
}

// notifyForgotten tells the handler which targeted answers were dropped;
// smu not held.
func (c *Conn) notifyForgotten() {
	c.smu.Lock()
	ids := c.dropped
	c.dropped = nil
	c.smu.Unlock()
	if len(ids) == 0 {
		return
	}
	if f, ok := c.cfg.Handler.(AnswerForgetter); ok {
		f.AnswerForgotten(c, ids)
	}
}

// release drops a retained answer (RELEASE frame). An answer that calls
// admitted before the RELEASE will still read is only marked: the reader
// admits such a call before it reads the RELEASE, but the call looks the
// answer up later, on its worker.
func (c *Conn) release(id uint64) {
	c.smu.Lock()
	if a := c.answers[id]; a != nil {
		if a.pins > 0 {
			a.released = true
		} else {
			c.dropAnswerLocked(id)
		}
	}
	forgot := len(c.dropped) > 0
	c.smu.Unlock()
	if forgot {
		c.notifyForgotten()
	}
}

// pinLocked pins the answers a call will read and returns the ids it
// pinned, for unpinLocked; smu held. An id with no answer yet is left
// out: an earlier call's answer exists from its admission on, so only a
// lying peer names one that appears later, and unpinning that would
// take a pin it never had.
func (c *Conn) pinLocked(ids []uint64) []uint64 {
	kept := ids[:0]
	for _, id := range ids {
		if a := c.answers[id]; a != nil {
			a.pins++
			kept = append(kept, id)
		}
	}
	return kept
}

// unpinLocked undoes pinLocked, dropping released answers nobody reads
// any more; smu held. It reports whether an answer holding capabilities
// lost its last pin.
func (c *Conn) unpinLocked(ids []uint64) (capsFreed bool) {
	for _, id := range ids {
		if a := c.answers[id]; a != nil {
			if a.pins--; a.pins == 0 {
				capsFreed = capsFreed || len(a.caps) > 0
				if a.released {
					c.dropAnswerLocked(id)
				}
			}
		}
	}
	return capsFreed
}

// ExportPinned reports whether export id of this side is in the result
// of an answer that admitted calls will still read, or passed back in the
// arguments of (or the target of) a call admitted and not yet finished:
// the peer may have released its reference already (it released the
// answer, or the capability right after sending the call), but a call it
// sent before that must find the export.
func (c *Conn) ExportPinned(id uint64) bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	pinned := false
	c.serving.each(func(sc *serverCall) {
		for _, b := range sc.backs {
			pinned = pinned || b == id
		}
		// A call addressed to the export, sent before the release, finds
		// it even when its delivery waits (a serialized service's turn).
		pinned = pinned || sc.in.HasTarget && sc.in.Target.Kind == wire.TargetExport && sc.in.Target.ID == id
	})
	if pinned {
		return true
	}
	for _, a := range c.answers {
		if a.pins == 0 {
			continue
		}
		for _, d := range a.caps {
			if d.Kind == wire.CapSenderHosted && d.ID == id {
				return true
			}
		}
	}
	return false
}

// Unpinner is implemented by handlers that keep exports alive while
// ExportPinned: Unpinned is called when an answer holding capabilities
// is no longer read by any admitted call.
type Unpinner interface {
	Unpinned(c *Conn)
}

// Answer waits for the retained answer of the peer's call id, for a
// pipelined call that references it. It fails if the peer never made that
// call with FlagRetain, or has released it.
func (c *Conn) Answer(ctx context.Context, id uint64) ([]byte, []wire.CapDescriptor, error) {
	c.smu.Lock()
	a := c.answers[id]
	c.smu.Unlock()
	if a == nil {
		return nil, nil, status.Errorf(status.InvalidArgument, "promise refers to call %d, which is unknown, not retained, or released", id)
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return nil, nil, status.FromError(ctx.Err())
	}
	if a.err != nil {
		return nil, nil, a.err
	}
	return a.result, a.caps, nil
}

// Releaser is implemented by handlers that export capabilities: RELEASE
// frames with FlagCapability reach it with the export id and how many
// references the peer dropped.
type Releaser interface {
	Release(c *Conn, export uint64, n uint32)
}

// ReleaseExport tells the peer this side dropped n references to its
// export id.
func (c *Conn) ReleaseExport(id uint64, n uint32) {
	if n > 0 {
		c.sendRelease(id, n)
	}
}

// sendRelease queues a RELEASE frame (n == 0: a retained answer) for the
// writer goroutine.
func (c *Conn) sendRelease(id uint64, n uint32) {
	if c.lockForAppend() != nil {
		return
	}
	c.wbuf = wire.AppendRelease(c.wbuf, id, n)
	c.flushLazyLocked()
}

// sendReleaseNoWait is sendRelease for the reader goroutine: it does not
// wait for room in the queue (as sendCancel, sendCredit), since the
// reader stuck behind a peer that is not reading would hold up every
// answer already arrived. Over the queue's bound the RELEASE is dropped,
// as a PONG is (sendPing): a peer that sends answers without reading
// cannot grow the queue, and what it loses is a reference to its own
// export.
func (c *Conn) sendReleaseNoWait(id uint64, n uint32) {
	c.wmu.Lock()
	if c.werr != nil || len(c.wbuf) >= c.cfg.MaxPendingWrite {
		c.wmu.Unlock()
		return
	}
	c.wbuf = wire.AppendRelease(c.wbuf, id, n)
	c.flushLazyLocked()
}
