package conn

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
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
	trailer []wire.MD            // the callee's trailers, if it sent any
	caps    []wire.CapDescriptor // the result's capability table, if any
	conn    *Conn
	ob      *observed // the observer's state, ended when the call completes (promises: &obs)
	obs     observed  // Config.Observer's state of the call (observe.go)
	owned   bool      // buf is a large RESULT payload read into a buffer of its own
	// refArgs, when set, are the call's large arguments, queued by
	// reference in write batch refGen (see Conn.queueRef).
	refArgs []byte
	refGen  uint64
	// refused: completed by the peer's GOAWAY (above its LastID), so
	// never served (await clears Outgoing.Sent).
	refused bool
	// unserved is Outgoing.Unserved, kept should the call be cancelled.
	unserved func()
	// Promises only: what OnDone registered, run once the answer is in
	// (completed set, under hmu).
	hmu       sync.Mutex
	hooks     []func(error)
	completed bool
}

// Reply is the answer to a successful call. Result is valid until Release.
type Reply call

// Result is the encoded result.
func (r *Reply) Result() []byte { return r.buf }

// Owned reports whether Result lives in a buffer of its own that the
// connection never reuses (a large result): a decoder may then keep
// slices of it (zero-copy) past Release.
func (r *Reply) Owned() bool { return r.owned }

// Caps is the result's capability table (wire.CapabilityExt values in
// the result index into it); valid until Release.
func (r *Reply) Caps() []wire.CapDescriptor { return r.caps }

// Conn is the connection the call ran on.
func (r *Reply) Conn() *Conn { return r.conn }

// Release returns the reply's buffer for reuse; the result must not be used
// afterwards.
func (r *Reply) Release() { putCall((*call)(r)) }

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func getCall() *call { return callPool.Get().(*call) }

func putCall(cl *call) {
	if cap(cl.buf) > 64<<10 || cl.owned {
		cl.buf = nil
	}
	cl.owned = false
	cl.refArgs = nil
	cl.refused = false
	cl.unserved = nil
	cl.err = nil
	cl.trailer = nil
	cl.caps = cl.caps[:0]
	cl.conn = nil
	callPool.Put(cl)
}

// complete records the outcome and wakes the caller. Exactly one party
// completes a call: whoever removed it from the in-flight table.
func (cl *call) complete(err error) {
	cl.err = err
	if ob := cl.ob; ob != nil {
		cl.ob = nil
		n := 0
		if err == nil {
			n = len(cl.buf)
		}
		ob.end(ob.info.Conn.cfg.Observer, n, err)
	}
	if cl.doneCh != nil {
		cl.hmu.Lock()
		hooks := cl.hooks
		cl.hooks, cl.completed = nil, true
		cl.hmu.Unlock()
		close(cl.doneCh)
		for _, fn := range hooks {
			fn(err)
		}
		return
	}
	cl.done <- struct{}{}
}

// Outgoing is a call this side makes: what goes into its CALL frame. The
// connection copies what it needs before Call, Go or OpenStream return.
type Outgoing struct {
	Function string
	Metadata []wire.MD
	Args     []byte // a msgpack array (its first bytes, when ArgsTail is set)
	// ArgsTail, when set, is the rest of the arguments after Args: a
	// blob that the connection copies once into its write buffer or,
	// over 64 KiB, sends from where it lies; the caller keeps it
	// unchanged until Call returns.
	ArgsTail []byte
	// Target, when set, addresses the call to a capability (an export of
	// the peer, or one in the answer of an earlier retained call).
	Target *wire.Target
	// Promises are the answers of earlier retained calls that Args use
	// (wire.PromiseExt values index into them).
	Promises []wire.PromiseRef
	// Caps is the capability table of Args (wire.CapabilityExt values
	// index into it).
	Caps []wire.CapDescriptor
	// Retain asks the peer to keep the answer for pipelined calls until
	// Release (Go only).
	Retain bool
	// Idempotent says calling the function twice is the same as once: on
	// a connection still in its 0-RTT handshake (transport.EarlyConn) the
	// call may go in early data, which can be replayed. Calls without it
	// wait for the handshake, and for the peer's HELLO.
	Idempotent bool
	// Sent is set by Call once the CALL frame is queued: a failure after
	// that may be of a call the peer received (its capabilities are the
	// peer's to release then), one before it is of a call that never left.
	// A call the peer's GOAWAY refused (never served) has it cleared.
	Sent bool
	// Unserved, when set, runs once (on the connection's reader) when the
	// peer's GOAWAY shows that the call was never served (its id above
	// the GOAWAY's LastID): what it passed is this side's to take back. So
	// it does for a promise (Go) or a stream, waiting or cancelled, and
	// for a unary call this side cancelled before its answer; a unary
	// call still waiting is told by Sent, cleared, instead.
	Unserved func()
}

// size estimates the CALL frame's payload size for the frame limit.
func (o *Outgoing) size() int {
	n := len(o.Args) + len(o.ArgsTail) + len(o.Function) + 32 + mdSize(o.Metadata)
	if o.Target != nil {
		n += 12 + len(o.Target.Path)
	}
	for _, p := range o.Promises {
		n += 11 + len(p.Path)
	}
	return n + capsSize(o.Caps)
}

// timeoutOf checks ctx before a call and returns the time left (0: no
// deadline).
func timeoutOf(ctx context.Context) (time.Duration, error) {
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		if timeout = time.Until(dl); timeout <= 0 {
			return 0, status.Wrap(status.DeadlineExceeded, status.ErrTimeout, context.DeadlineExceeded, "deadline passed before the call was sent")
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, status.FromError(err)
	}
	return timeout, nil
}

// start is the one call set-up: it checks the call, takes an id, registers
// cl (a call) or st (a stream) under it, and queues the CALL frame. lazy
// leaves the write to the writer goroutine so that a batch of calls
// (promises) shares one write.
func (c *Conn) start(ctx context.Context, o *Outgoing, cl *call, st *Stream, lazy bool) (uint64, error) {
	timeout, err := timeoutOf(ctx)
	if err != nil {
		return 0, err
	}
	f := wire.CallFrame{Stream: st != nil, Retain: o.Retain, Timeout: timeout, Function: o.Function,
		Metadata: o.Metadata, Target: o.Target, Promises: o.Promises, Caps: o.Caps}
	if err := wire.CheckCall(&f); err != nil {
		// Sent, it would be a protocol error closing the connection.
		return 0, status.Errorf(status.InvalidArgument, "call to %.40q: %v", o.Function, err)
	}
	size := o.size()
	early := false
	if c.helloCh != nil {
		select {
		case <-c.helloCh:
		default:
			if early = c.earlyOK(o, st, size); !early {
				if err := c.waitHello(ctx); err != nil {
					return 0, err
				}
			}
		}
	}
	if !early && size > int(c.peerMaxFrame) {
		return 0, status.Errorf(status.ResourceExhausted, "call to %q is %d bytes, over the peer's frame limit of %d", o.Function, size, c.peerMaxFrame)
	}
	// The id is taken under the write lock so that ids reach the wire in
	// increasing order, which the peer checks.
	if err := c.lockForAppendCtx(ctx); err != nil {
		return 0, err
	}
	c.cmu.Lock()
	if c.goingAway || c.Err() != nil {
		err := c.refusal()
		c.cmu.Unlock()
		c.wmu.Unlock()
		return 0, err
	}
	id := c.nextID
	c.nextID += 2
	if st != nil {
		st.id = id
		st.unserved = o.Unserved
		c.ostreams[id] = st
	} else {
		cl.unserved = o.Unserved
		c.calls.put(id, cl)
	}
	c.cmu.Unlock()
	f.ID = id
	var at int
	safe := early && c.wsafe == len(c.wbuf) // everything queued before may go early too
	c.wbuf, at = wire.AppendCall(c.wbuf, &f)
	switch {
	case cl != nil && !lazy && len(o.ArgsTail) > bigWrite:
		// Arguments' large tail goes out from where it lies; Call keeps
		// it unchanged until written (releaseRef).
		c.wbuf = append(c.wbuf, o.Args...)
		binary.BigEndian.PutUint32(c.wbuf[at:], uint32(len(c.wbuf)-at-wire.HeaderSize+len(o.ArgsTail)))
		cl.refArgs, cl.refGen = o.ArgsTail, c.queueRef(o.ArgsTail)
	case cl != nil && !lazy && len(o.ArgsTail) == 0 && len(o.Args) > bigWrite:
		// So do large arguments.
		binary.BigEndian.PutUint32(c.wbuf[at:], uint32(len(c.wbuf)-at-wire.HeaderSize+len(o.Args)))
		cl.refArgs, cl.refGen = o.Args, c.queueRef(o.Args)
	default:
		c.wbuf = append(c.wbuf, o.Args...)
		c.wbuf = append(c.wbuf, o.ArgsTail...)
		wire.EndFrame(c.wbuf, at)
	}
	if safe {
		c.wsafe = len(c.wbuf)
	}
	switch {
	case lazy:
		c.flushLazyLocked()
	case cl != nil && cl.refArgs != nil && ctx.Done() != nil:
		// Large arguments that may take long to write go to the writer
		// goroutine, so that the caller waits for its answer, not for
		// the write: if its context ends first, releaseRef has the write
		// cut and the rest copied (the caller's buffer is its own again).
		c.flushLazyLocked()
	default:
		c.flushLocked()
	}
	return id, nil
}

// Call sends a call and waits for its answer. The context's deadline
// travels with the call; cancelling the context sends CANCEL and returns
// at once.
func (c *Conn) Call(ctx context.Context, o *Outgoing) (*Reply, error) {
	if o.Retain {
		return nil, status.New(status.InvalidArgument, "conn: Call cannot retain its answer; use Go")
	}
	if c.cfg.Observer != nil {
		return c.observedCall(ctx, o)
	}
	return c.call(ctx, o)
}

func (c *Conn) call(ctx context.Context, o *Outgoing) (*Reply, error) {
	cl := getCall()
	return c.reply(cl, c.await(ctx, o, cl))
}

// reply is cl as the answer to a call that await ended with err: cl goes
// back to its pool on error.
func (c *Conn) reply(cl *call, err error) (*Reply, error) {
	if err != nil {
		putCall(cl)
		return nil, err
	}
	cl.conn = c
	return (*Reply)(cl), nil
}

// await sends the call cl stands for and waits for its answer (or ctx);
// the caller puts cl back on error.
func (c *Conn) await(ctx context.Context, o *Outgoing, cl *call) error {
	c.inflight.Add(1) // before the frame is queued: it decides how the write goes
	defer c.inflight.Add(-1)
	id, err := c.start(ctx, o, cl, nil, false)
	if err != nil {
		return err
	}
	o.Sent = true
	if cl.refArgs != nil {
		// Returning hands o.Args back to the caller: the connection must
		// hold no reference to them by then (an answer can only come
		// after they were written; a cancel or a failure can come before).
		defer func(b []byte, gen uint64) { c.releaseRef(gen, b) }(cl.refArgs, cl.refGen)
	}
	if done := ctx.Done(); done == nil {
		<-cl.done // a context that is never done: no select to pay
	} else {
		select {
		case <-cl.done:
		case <-done:
			c.cmu.Lock()
			mine := c.calls.take(id) != nil
			if mine {
				c.abandonLocked(id, cl.unserved)
			}
			c.cmu.Unlock()
			if mine {
				c.sendCancel(id, ctx.Err())
				return status.FromError(ctx.Err())
			}
			<-cl.done // the answer raced the cancel; take it
		}
	}
	if cl.refused {
		// Refused by the peer's GOAWAY: it never received the call. (An
		// ERROR the peer sent, retryable or not, is of a call it did.)
		o.Sent = false
	}
	if cl.trailer != nil {
		sinkTrailer(ctx, cl.trailer)
	}
	return cl.err
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

// parsedAnswer is a RESULT or ERROR frame, decoded.
type parsedAnswer struct {
	trailer []wire.MD
	caps    []byte // the encoded capability table
	value   []byte // the result
	err     *status.Error
}

func parseAnswer(h wire.Header, p []byte) (parsedAnswer, error) {
	var a parsedAnswer
	if h.Type == wire.TypeResult {
		r, err := wire.ParseResult(h.Flags, p)
		if err != nil {
			return a, err
		}
		if len(r.Trailer) > 0 {
			if a.trailer, err = wire.ParseMetadata(nil, r.Trailer); err != nil {
				return a, err
			}
		}
		a.caps, a.value = r.Caps, r.Value
		return a, nil
	}
	if h.Flags&wire.FlagMetadata != 0 {
		block, rest, err := wire.SplitMetadata(h.Type, p)
		if err != nil {
			return a, err
		}
		if a.trailer, err = wire.ParseMetadata(nil, block); err != nil {
			return a, err
		}
		p = rest
	}
	e, err := wire.ParseError(p)
	if err != nil {
		return a, err
	}
	a.err = remoteError(e)
	return a, nil
}

// answer delivers a RESULT or ERROR frame to its waiter.
func (c *Conn) answer(h wire.Header, p []byte) error {
	if c.granted == len(p) && c.granted > 0 {
		c.unreserve(c.granted) // reserved while it arrived (grantFrame); the caller's now
		c.granted = 0
	}
	a, err := parseAnswer(h, p)
	if err != nil {
		return err
	}
	c.cmu.Lock()
	cl := c.calls.take(h.ID)
	var st *Stream
	if cl == nil {
		st = c.ostreams[h.ID]
		delete(c.ostreams, h.ID)
		if st == nil && c.abandoned != nil {
			delete(c.abandoned, h.ID) // answered: the peer had it
		}
	}
	c.cmu.Unlock()
	if st != nil {
		st.trailer = a.trailer
		if a.trailer != nil {
			sinkTrailer(st.ctx, a.trailer)
		}
		if a.err == nil {
			st.resultCaps, _ = wire.ParseCapTable(nil, a.caps) // checked by parseAnswer
			ownCapPaths(st.resultCaps)
			st.finish(append([]byte(nil), a.value...), nil)
		} else {
			st.finish(nil, a.err)
		}
		return nil
	}
	if cl == nil {
		if h.ID >= c.nextIDSnapshot() || h.ID%2 != c.myParity() {
			return fmt.Errorf("%s for call %d, which was never made", h.Type, h.ID)
		}
		// Cancelled meanwhile (the answer crossed the CANCEL): nobody
		// takes the capabilities of its result, which the peer counted a
		// reference for each of.
		if a.err == nil {
			releaseSenderHosted(a.caps, c.sendReleaseNoWait) // on the reader: never behind a full queue
		}
		return nil
	}
	cl.trailer = a.trailer
	if c.cfg.Observer != nil && !cl.obs.info.Start.IsZero() {
		// The call ends as its answer arrived, timed by the read that
		// brought it (one clock read per read, not per call), as an
		// incoming call starts at its frame's arrival.
		cl.obs.info.elapsed = c.arrived.Sub(cl.obs.info.Start)
	}
	if a.err == nil {
		if len(a.value) > bigWrite && c.rd.Take() {
			cl.buf, cl.owned = a.value, true // read into its own buffer: no copy
		} else {
			cl.buf = append(cl.buf[:0], a.value...)
		}
		cl.caps, _ = wire.ParseCapTable(cl.caps[:0], a.caps)
		ownCapPaths(cl.caps)
		cl.complete(nil)
		return nil
	}
	cl.complete(a.err)
	return nil
}

// ownCapPaths copies the paths in caps (promised capabilities), which
// point into the read buffer, so that they outlive the frame.
func ownCapPaths(caps []wire.CapDescriptor) {
	for i := range caps {
		if caps[i].Path != nil {
			caps[i].Path = append([]byte(nil), caps[i].Path...)
		}
	}
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
	c.observeGoAway(false, g.Code, g.Message)
	c.cmu.Lock()
	c.goingAway = true
	c.peerAway = true
	c.unusable.Store(true)
	c.awayLast = g.LastID
	c.awayMsg = string(g.Message)
	refused := c.calls.takeAbove(g.LastID)
	var refusedStreams []*Stream
	for id, s := range c.ostreams {
		if id > g.LastID {
			refusedStreams = append(refusedStreams, s)
			delete(c.ostreams, id)
		}
	}
	var unserved []func()
	for id, fn := range c.abandoned {
		if id > g.LastID {
			unserved = append(unserved, fn)
		}
	}
	c.abandoned = nil // the others were served
	c.cmu.Unlock()
	refusal := func() *status.Error {
		return &status.Error{Code: status.Unavailable, Category: status.ErrConnection, Retryable: true,
			Message: "call not served: peer is going away (" + string(g.Message) + ")"}
	}
	for _, cl := range refused {
		cl.refused = true
		if cl.doneCh != nil && cl.unserved != nil { // a promise: no Sent to clear
			unserved = append(unserved, cl.unserved)
		}
		cl.complete(refusal())
	}
	for _, s := range refusedStreams {
		if s.unserved != nil {
			unserved = append(unserved, s.unserved)
		}
		s.finish(nil, refusal())
	}
	for _, fn := range unserved {
		fn()
	}
}

// maxAbandoned bounds the cancelled calls kept for a GOAWAY (abandoned):
// a peer that answers none of them and never sends GOAWAY cannot grow
// the table without end.
const maxAbandoned = 4096

// abandonLocked keeps the Unserved of call id, which this side cancelled
// before its answer, for a GOAWAY that may yet show it was never served;
// cmu held. Once the peer's GOAWAY is in (not Retire, which may come
// before it), a call still waiting was served. Over maxAbandoned, the
// lower half of the ids is forgotten (the earliest sent, likeliest
// served): what they passed stays the peer's until the connection closes.
func (c *Conn) abandonLocked(id uint64, unserved func()) {
	if unserved == nil || c.peerAway {
		return
	}
	if c.abandoned == nil {
		c.abandoned = make(map[uint64]func())
	}
	if len(c.abandoned) >= maxAbandoned {
		ids := make([]uint64, 0, len(c.abandoned))
		for k := range c.abandoned {
			ids = append(ids, k)
		}
		slices.Sort(ids)
		for _, k := range ids[:len(ids)/2] {
			delete(c.abandoned, k)
		}
	}
	c.abandoned[id] = unserved
}
