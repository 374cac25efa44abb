package conn

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// answer is a retained result of a call the peer made with FlagRetain:
// later pipelined calls read it as an argument until the peer releases it.
type answer struct {
	done   chan struct{}
	result []byte
	err    *status.Error
	// pins counts admitted calls that will read this answer; a RELEASE
	// that arrives while pinned only marks it, and the last unpin drops it.
	pins     int
	released bool
	counted  int // bytes of result counted in retainedBytes (smu)
}

// Async is an outgoing call whose answer is awaited later (a promise).
type Async struct {
	c  *Conn
	id uint64
	cl *call
	// stop ends the context watch that cancels the call.
	stop func() bool
}

// ID is the call's id: pipelined calls reference it.
func (a *Async) ID() uint64 { return a.id }

// Conn is the connection the call runs on; only calls on it can reference
// it.
func (a *Async) Conn() *Conn { return a.c }

// Done is closed when the answer has arrived.
func (a *Async) Done() <-chan struct{} { return a.cl.doneCh }

// Result returns the encoded result or the error; valid after Done.
func (a *Async) Result() ([]byte, error) {
	<-a.cl.doneCh
	return a.cl.buf, a.cl.err
}

// Go sends a call without waiting for its answer. With retain, the peer
// keeps the answer for pipelined calls until Release; pipelined says args
// reference earlier retained calls. Cancelling ctx before the answer
// arrives sends CANCEL.
func (c *Conn) Go(ctx context.Context, function string, md []wire.MD, args []byte, retain, pipelined bool) (*Async, error) {
	if c.mux != nil {
		return nil, status.New(status.Unimplemented, "promise pipelining is not supported on transports with native streams (quic://) yet")
	}
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return nil, status.Wrap(status.DeadlineExceeded, status.ErrTimeout, context.DeadlineExceeded, "deadline passed before the call was sent")
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromError(err)
	}
	if size := len(args) + len(function) + 32 + mdSize(md); size > int(c.peerMaxFrame) {
		return nil, status.Errorf(status.ResourceExhausted, "call to %q is %d bytes, over the peer's frame limit of %d", function, size, c.peerMaxFrame)
	}
	var flags uint8
	if retain {
		flags |= wire.FlagRetain
	}
	if pipelined {
		flags |= wire.FlagPipelined
	}
	cl := &call{done: make(chan struct{}, 1), doneCh: make(chan struct{})}
	if err := c.lockForAppend(); err != nil {
		return nil, err
	}
	c.cmu.Lock()
	if c.goingAway || c.Err() != nil {
		err := c.refusal()
		c.cmu.Unlock()
		c.wmu.Unlock()
		return nil, err
	}
	id := c.nextID
	c.nextID += 2
	c.calls[id] = cl
	c.cmu.Unlock()
	var at int
	c.wbuf, at = wire.BeginCall(c.wbuf, id, timeout, function, md)
	c.wbuf[at+5] = flags
	c.wbuf = append(c.wbuf, args...)
	wire.EndFrame(c.wbuf, at)
	c.flushLazyLocked() // promises come in batches: let them share a write

	a := &Async{c: c, id: id, cl: cl}
	a.stop = context.AfterFunc(ctx, func() { a.cancel(ctx.Err()) })
	return a, nil
}

// Cancel abandons the call if its answer has not arrived: the peer's
// handler sees its context cancelled.
func (a *Async) Cancel() { a.cancel(context.Canceled) }

func (a *Async) cancel(cause error) {
	a.c.cmu.Lock()
	_, mine := a.c.calls[a.id]
	delete(a.c.calls, a.id)
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
	a.c.sendControl(wire.TypeRelease, a.id)
}

// retain registers the answer slot of a retained incoming call; smu held.
func (c *Conn) retainLocked(id uint64) error {
	if len(c.answers) >= int(c.cfg.MaxRetained) {
		return fmt.Errorf("too many retained answers on this connection (limit %d): release promises", c.cfg.MaxRetained)
	}
	c.answers[id] = &answer{done: make(chan struct{})}
	return nil
}

// settle stores a retained call's outcome. Retained results are bounded
// in bytes too: one over the budget is replaced by a ResourceExhausted
// error that its dependents see.
func (c *Conn) settle(id uint64, out []byte, err error) {
	c.smu.Lock()
	defer c.smu.Unlock()
	a := c.answers[id]
	if a == nil {
		return // released already
	}
	if err == nil && c.retainedBytes+len(out) > int(c.cfg.MaxRetainedBytes) {
		err = status.Errorf(status.ResourceExhausted, "retained answers on this connection exceed %d bytes: release promises", c.cfg.MaxRetainedBytes)
	}
	if err != nil {
		a.err = status.FromError(err)
	} else {
		a.result = append([]byte(nil), out...)
		a.counted = len(out)
		c.retainedBytes += a.counted
	}
	close(a.done)
}

// dropAnswerLocked forgets a retained answer; smu held.
func (c *Conn) dropAnswerLocked(id uint64) {
	if a := c.answers[id]; a != nil {
		c.retainedBytes -= a.counted
		delete(c.answers, id)
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
	c.smu.Unlock()
}

// pinLocked pins the answers a call will read; smu held.
func (c *Conn) pinLocked(ids []uint64) {
	for _, id := range ids {
		if a := c.answers[id]; a != nil {
			a.pins++
		}
	}
}

// unpinLocked undoes pinLocked, dropping released answers nobody reads
// any more; smu held.
func (c *Conn) unpinLocked(ids []uint64) {
	for _, id := range ids {
		if a := c.answers[id]; a != nil {
			if a.pins--; a.pins == 0 && a.released {
				c.dropAnswerLocked(id)
			}
		}
	}
}

// answerRefs lists the retained answers a CALL will read: a promised
// capability target (@p<id>.method) and promise arguments.
func answerRefs(fn, args []byte, pipelined bool, dst []uint64) []uint64 {
	if len(fn) > 2 && fn[0] == '@' && fn[1] == 'p' {
		var id uint64
		i := 2
		for ; i < len(fn) && fn[i] >= '0' && fn[i] <= '9'; i++ {
			id = id*10 + uint64(fn[i]-'0')
		}
		dst = append(dst, id)
	}
	if !pipelined {
		return dst
	}
	r := value.NewReader(args)
	n, err := r.ReadArrayHeader()
	if err != nil {
		return dst
	}
	for i := 0; i < n; i++ {
		if r.PeekKind() == value.KindExt {
			t, data, err := r.ReadExt()
			if err != nil {
				return dst
			}
			if t == wire.PromiseExt {
				if id, k := binary.Uvarint(data); k > 0 {
					dst = append(dst, id)
				}
			}
			continue
		}
		if _, err := r.Skip(); err != nil {
			return dst
		}
	}
	return dst
}

// Answer waits for the retained answer of the peer's call id, for a
// pipelined call that references it. It fails if the peer never made that
// call with FlagRetain, or has released it.
func (c *Conn) Answer(ctx context.Context, id uint64) ([]byte, error) {
	c.smu.Lock()
	a := c.answers[id]
	c.smu.Unlock()
	if a == nil {
		return nil, status.Errorf(status.InvalidArgument, "promise refers to call %d, which is unknown, not retained, or released", id)
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return nil, status.FromError(ctx.Err())
	}
	if a.err != nil {
		return nil, a.err
	}
	return a.result, nil
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
	if c.lockForAppend() != nil {
		return
	}
	var at int
	c.wbuf, at = wire.BeginFrame(c.wbuf, wire.TypeRelease, wire.FlagCapability, id)
	c.wbuf = binary.AppendUvarint(c.wbuf, uint64(n))
	wire.EndFrame(c.wbuf, at)
	c.flushLazyLocked()
}
