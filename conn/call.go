package conn

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// call is one outgoing call waiting for its answer. It is pooled: Reply is
// the same struct, handed to the caller until Release.
type call struct {
	done    chan struct{} // buffered(1): the answer is in
	doneCh  chan struct{} // promises only: closed when the answer is in
	buf     []byte        // the RESULT payload
	err     error
	trailer []wire.MD // the callee's trailers, if it sent any
	conn    *Conn
}

// Reply is the answer to a successful call. Result is valid until Release.
type Reply call

// Result is the encoded result.
func (r *Reply) Result() []byte { return r.buf }

// Conn is the connection the call ran on.
func (r *Reply) Conn() *Conn { return r.conn }

// Release returns the reply's buffer for reuse; the result must not be used
// afterwards.
func (r *Reply) Release() { putCall((*call)(r)) }

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(cl *call) {
	if cap(cl.buf) > 64<<10 {
		cl.buf = nil
	}
	cl.err = nil
	cl.trailer = nil
	cl.conn = nil
	callPool.Put(cl)
}

// complete records the outcome and wakes the caller. Exactly one party
// completes a call: whoever removed it from the in-flight table.
func (cl *call) complete(err error) {
	cl.err = err
	if cl.doneCh != nil {
		close(cl.doneCh)
		return
	}
	cl.done <- struct{}{}
}

// Call sends a call and waits for its answer. md and args are copied before
// Call returns. The context's deadline travels with the call; cancelling the
// context sends CANCEL and returns at once.
func (c *Conn) Call(ctx context.Context, function string, md []wire.MD, args []byte) (*Reply, error) {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, status.Wrap(status.DeadlineExceeded, status.ErrTimeout, context.DeadlineExceeded, "deadline passed before the call was sent")
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromError(err)
	}
	if size := len(args) + len(function) + 32 + mdSize(md); size > int(c.peerMaxFrame) {
		return nil, status.Errorf(status.ResourceExhausted, "call to %q is %d bytes, over the peer's frame limit of %d", function, size, c.peerMaxFrame)
	}
	if c.mux != nil {
		return c.callMux(ctx, timeout, function, md, args)
	}

	cl := getCall()
	// The id is taken under the write lock so that ids reach the wire in
	// increasing order, which the peer checks.
	if err := c.lockForAppend(); err != nil {
		putCall(cl)
		return nil, err
	}
	c.cmu.Lock()
	if c.goingAway || c.Err() != nil {
		err := c.refusal()
		c.cmu.Unlock()
		c.wmu.Unlock()
		putCall(cl)
		return nil, err
	}
	id := c.nextID
	c.nextID += 2
	c.calls[id] = cl
	c.cmu.Unlock()
	c.inflight.Add(1)
	defer c.inflight.Add(-1)

	var at int
	c.wbuf, at = wire.BeginCall(c.wbuf, id, timeout, function, md)
	c.wbuf = append(c.wbuf, args...)
	wire.EndFrame(c.wbuf, at)
	c.flushLocked()

	select {
	case <-cl.done:
	case <-ctx.Done():
		c.cmu.Lock()
		_, mine := c.calls[id]
		delete(c.calls, id)
		c.cmu.Unlock()
		if mine {
			c.sendCancel(id, ctx.Err())
			putCall(cl)
			return nil, status.FromError(ctx.Err())
		}
		<-cl.done // the answer raced the cancel; take it
	}
	if cl.trailer != nil {
		sinkTrailer(ctx, cl.trailer)
	}
	if cl.err != nil {
		err := cl.err
		putCall(cl)
		return nil, err
	}
	cl.conn = c
	return (*Reply)(cl), nil
}

// refusal is the error for a call started on a closing connection; cmu held.
func (c *Conn) refusal() error {
	if err := c.Err(); err != nil {
		return err
	}
	return &status.Error{Code: status.Unavailable, Category: status.ErrConnection, Retryable: true,
		Message: "connection is going away: " + c.awayMsg}
}

func mdSize(md []wire.MD) int {
	n := 0
	for _, kv := range md {
		n += len(kv.Key) + len(kv.Value) + 8
	}
	return n
}

// answer delivers a RESULT or ERROR frame to its waiter.
func (c *Conn) answer(h wire.Header, p []byte) error {
	var trailer []wire.MD
	if h.Flags&wire.FlagMetadata != 0 {
		block, rest, err := wire.SplitMetadata(h.Type, p)
		if err != nil {
			return err
		}
		if trailer, err = wire.ParseMetadata(nil, block); err != nil {
			return err
		}
		p = rest
	}
	var perr error
	var e wire.ErrorPayload
	if h.Type == wire.TypeError {
		if e, perr = wire.ParseError(p); perr != nil {
			return perr
		}
	}
	c.cmu.Lock()
	cl := c.calls[h.ID]
	delete(c.calls, h.ID)
	var st *Stream
	if cl == nil {
		st = c.ostreams[h.ID]
		delete(c.ostreams, h.ID)
	}
	c.cmu.Unlock()
	if st != nil {
		st.trailer = trailer
		if trailer != nil {
			sinkTrailer(st.ctx, trailer)
		}
		if h.Type == wire.TypeResult {
			st.finish(append([]byte(nil), p...), nil)
		} else {
			st.finish(nil, remoteError(e))
		}
		return nil
	}
	if cl == nil {
		if h.ID >= c.nextIDSnapshot() || h.ID%2 != c.myParity() {
			return fmt.Errorf("%s for call %d, which was never made", h.Type, h.ID)
		}
		return nil // cancelled meanwhile
	}
	cl.trailer = trailer
	if h.Type == wire.TypeResult {
		cl.buf = append(cl.buf[:0], p...)
		cl.complete(nil)
		return nil
	}
	cl.complete(remoteError(e))
	return nil
}

// remoteError turns an ERROR payload into the caller's error value.
func remoteError(e wire.ErrorPayload) *status.Error {
	code := status.Code(e.Code)
	cat := status.CategoryFromID(e.Category)
	if cat == nil {
		cat = status.CategoryOf(code)
	}
	se := &status.Error{Code: code, Message: string(e.Message), Retryable: e.Retryable, Category: cat}
	if len(e.Details) > 0 {
		se.Details = append([]byte(nil), e.Details...)
	}
	return se
}

func (c *Conn) nextIDSnapshot() uint64 {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	return c.nextID
}

func (c *Conn) myParity() uint64 {
	if c.client {
		return 1
	}
	return 0
}

// peerGoAway records the peer's GOAWAY: no new calls, and calls above its
// LastID were not and will not be served, so they fail as retryable.
func (c *Conn) peerGoAway(g wire.GoAway) {
	c.cmu.Lock()
	c.goingAway = true
	c.unusable.Store(true)
	c.awayLast = g.LastID
	c.awayMsg = string(g.Message)
	var refused []*call
	for id, cl := range c.calls {
		if id > g.LastID {
			refused = append(refused, cl)
			delete(c.calls, id)
		}
	}
	var refusedStreams []*Stream
	for id, s := range c.ostreams {
		if id > g.LastID {
			refusedStreams = append(refusedStreams, s)
			delete(c.ostreams, id)
		}
	}
	c.cmu.Unlock()
	refusal := func() *status.Error {
		return &status.Error{Code: status.Unavailable, Category: status.ErrConnection, Retryable: true,
			Message: "call not served: peer is going away (" + string(g.Message) + ")"}
	}
	for _, cl := range refused {
		cl.complete(refusal())
	}
	for _, s := range refusedStreams {
		s.finish(nil, refusal())
	}
}
