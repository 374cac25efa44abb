package conn

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// Handler serves incoming calls. ServeCall appends the encoded result to out
// and returns it, or returns an error that is sent as an ERROR frame. The
// Incoming value and its slices are valid only until ServeCall returns.
type Handler interface {
	ServeCall(ctx context.Context, in *Incoming, out []byte) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in *Incoming, out []byte) ([]byte, error)

// ServeCall calls f.
func (f HandlerFunc) ServeCall(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
	return f(ctx, in, out)
}

// Incoming is a call from the peer.
type Incoming struct {
	ID       uint64
	Function []byte        // the function id, or the method name when HasTarget
	Args     []byte        // a msgpack array
	Timeout  time.Duration // zero when the caller set no deadline
	Metadata []wire.MD
	Conn     *Conn
	// Target is the capability the call is addressed to, when HasTarget.
	Target    wire.Target
	HasTarget bool
	// Ticket numbers the calls to one target in arrival order (1, 2, ...),
	// so the target can deliver them in that order (E-order).
	Ticket uint64
	// Promises are the peer's retained answers the arguments use:
	// wire.PromiseExt values in Args index into it. Read them with Answer.
	Promises []wire.PromiseRef
	// Caps is the capability table of Args (wire.CapabilityExt values
	// index into it).
	Caps []wire.CapDescriptor
	// CapsTaken is set by whoever took the references in Caps (emptying
	// it), so that a second decoding of Args (a handler run twice) can
	// tell that from a call without capabilities.
	CapsTaken bool
	// Stream is set when the caller opened a stream; the handler sends and
	// receives on it, and its return ends the stream.
	Stream *Stream
	// ResultCaps is set by the handler: the capability table of the
	// result it returns.
	ResultCaps []wire.CapDescriptor
	// ResultTail may be set by the handler when TailOK: the last bytes of
	// the result, after the ones it returns. A large blob there goes to
	// the socket from where it lies instead of being copied into the
	// result, so the handler must not change it after returning.
	ResultTail []byte
	// TailOK says the handler's result goes to the connection directly
	// (no interceptor, which must see it whole), so it may set
	// ResultTail.
	TailOK bool
	// Arrival is the handler's own note on the call, set by its Arriver
	// or Inliner on the reading goroutine (what it found when the call
	// arrived).
	Arrival any
	// ArgsOwned says Args lives in a buffer of its own (a large call) that
	// the connection never reuses: a decoder may keep slices of it
	// (zero-copy) past the call.
	ArgsOwned bool
	// Early says the call arrived in 0-RTT data, before the connection's
	// handshake completed (transport.EarlyConn): an attacker may have
	// replayed it. Only calls the handler's EarlyChecker accepts are
	// served before the handshake completes; the others wait for it.
	Early bool
}

// EarlyChecker is implemented by handlers that can tell which calls are
// safe to serve from 0-RTT data, which may be a replay: those to
// idempotent functions. A call it refuses, or any call to a handler
// without it, waits until the handshake completes (and is never served
// if the handshake does not complete).
type EarlyChecker interface {
	ServeEarly(in *Incoming) bool
}

// serverCall is one incoming call; pooled.
type serverCall struct {
	pins     []uint64 // retained answers this call reads (pinned)
	retained bool     // keep the answer for pipelined calls
	charged  int      // bytes of the budget the request copy holds
	in       Incoming
	buf      []byte // a copy of the CALL payload; in's slices point into it
	out      []byte
	ctx      *callCtx
	ob       observed  // Config.Observer's state of the call (observe.go)
	arrived  time.Time // when the CALL arrived (with an Observer only)
	// st is the function's record of call durations when the call could
	// run inline (inline.go); its duration is recorded there.
	st *InlineStat
	// backs are the exports of this side the arguments pass back, noted
	// at arrival (the handler may rewrite in.Caps): ExportPinned (smu).
	backs []uint64
}

var serverCallPool = sync.Pool{New: func() any { return new(serverCall) }}

// incoming registers a CALL read from the connection and hands it to a
// worker. It first takes the request's size from the memory budget,
// waiting (and so not reading: TCP backpressure) while the budget is
// spent.
func (c *Conn) incoming(h wire.Header, p []byte) error {
	if c.granted == len(p) && c.granted > 0 {
		c.granted = 0 // reserved while it arrived (grantFrame)
	} else if !c.reserve(len(p)) {
		return nil // closed while waiting
	}
	sc, refusal, err := c.admit(h, p)
	if err != nil || refusal != nil {
		c.unreserve(len(p))
	}
	if err != nil {
		return err
	}
	if refusal != nil {
		c.sendError(h.ID, refusal)
		if !refusal.Retryable {
			c.releaseRefused(h, p)
		}
		return nil
	}
	sc.charged = len(p)
	if c.early != nil {
		if err := c.holdEarly(sc); err != nil {
			c.unreserve(len(p))
			return err
		}
	}
	if sc.in.HasTarget {
		if a, ok := c.cfg.Handler.(Arriver); ok {
			a.Arrive(&sc.in)
		}
	}
	if sc.st = c.inlineStat(sc); sc.st != nil && sc.st.Inline() {
		return c.runInline(sc)
	}
	c.dispatchCall(sc)
	return nil
}

// releaseRefused releases the peer's exports that a refused call passed:
// the peer counted a reference for each, and no handler will take them.
// A call refused as retryable (the connection is draining) keeps them:
// the GOAWAY before the refusal told the peer it was not served, and the
// peer takes them back itself.
func (c *Conn) releaseRefused(h wire.Header, p []byte) {
	if wc, err := wire.ParseCall(h.Flags, p); err == nil {
		releaseSenderHosted(wc.Caps, c.ReleaseExport)
	}
}

// releaseSenderHosted gives one reference back, with release, for each
// export of the peer in caps, an encoded capability table that no one
// will take (checked when its frame was parsed).
func releaseSenderHosted(caps []byte, release func(id uint64, n uint32)) {
	if len(caps) == 0 {
		return
	}
	var cs [8]wire.CapDescriptor
	list, _ := wire.ParseCapTable(cs[:0], caps)
	for _, d := range list {
		if d.Kind == wire.CapSenderHosted {
			release(d.ID, 1)
		}
	}
}

// Arriver is implemented by handlers that order the calls on a
// capability: Arrive sees each targeted call on the reading goroutine, in
// arrival order, before it is served. It must not block.
type Arriver interface {
	Arrive(in *Incoming)
}

// targetKey identifies a capability target for ticketing.
type targetKey struct {
	kind wire.TargetKind
	id   uint64
	path string
}

// admit checks a CALL and registers it. A malformed frame is an error (a
// protocol error); a call the connection will not serve now (draining,
// limits) gets a refusal.
func (c *Conn) admit(h wire.Header, p []byte) (*serverCall, *status.Error, error) {
	if h.ID%2 == c.myParity() {
		return nil, nil, fmt.Errorf("CALL id %d has this side's parity", h.ID)
	}
	wc, err := wire.ParseCall(h.Flags, p)
	if err != nil {
		return nil, nil, err
	}
	var md []wire.MD
	if len(wc.Metadata) > 1 || (len(wc.Metadata) == 1 && wc.Metadata[0] != 0) {
		if md, err = c.mdc.Parse(wc.Metadata); err != nil {
			return nil, nil, err
		}
	}
	stream, retain := h.Flags&wire.FlagStream != 0, h.Flags&wire.FlagRetain != 0

	c.smu.Lock()
	defer c.smu.Unlock()
	if h.ID <= c.lastIn {
		return nil, nil, fmt.Errorf("CALL id %d reuses or precedes id %d", h.ID, c.lastIn)
	}
	c.lastIn = h.ID
	switch {
	case c.draining:
		return nil, &status.Error{Code: status.Unavailable, Retryable: true, Message: "server is shutting down"}, nil
	case c.active.Load() >= c.cfg.MaxConcurrent:
		return nil, status.Errorf(status.ResourceExhausted, "too many concurrent calls on this connection (limit %d)", c.cfg.MaxConcurrent), nil
	case stream && c.servingStreams >= c.cfg.MaxConcurrentStreams:
		return nil, status.Errorf(status.ResourceExhausted, "too many concurrent streams on this connection (limit %d)", c.cfg.MaxConcurrentStreams), nil
	}
	var key targetKey
	if wc.HasTarget {
		key = targetKey{kind: wc.Target.Kind, id: wc.Target.ID}
		if len(wc.Target.Path) > 0 {
			key.path = string(wc.Target.Path)
		}
		if _, known := c.tickets[key]; !known {
			switch a := c.answers[key.id]; {
			case len(c.tickets) >= maxTargets:
				// A peer naming ever new targets cannot grow the table.
				return nil, status.Errorf(status.ResourceExhausted, "too many capability targets on this connection (limit %d)", maxTargets), nil
			case key.kind != wire.TargetAnswer:
			case a == nil:
				// Its ticket would never be forgotten: only an answer's
				// release forgets the targets in it.
				return nil, status.Errorf(status.InvalidArgument, "call targets a capability in the answer of call %d, which is unknown, not retained, or released", key.id), nil
			default:
				// The paths are kept with the answer until its release.
				if refusal := c.retainRefusal(len(key.path)); refusal != nil {
					return nil, refusal, nil
				}
			}
		}
	}
	// The answers the call reads (a target in a promised answer, the
	// promise table, promised capabilities passed back) give the length
	// of the chain it ends, which is bounded: a chain refused at its
	// first link too many, by name.
	var refArr [8]uint64
	refs := refArr[:0]
	depth := 1
	if wc.HasTarget || len(wc.Promises) > 0 || len(wc.Caps) > 0 {
		refs = frameRefs(&wc, refs)
		depth = c.chainDepthLocked(refs)
		if depth > c.cfg.MaxChain {
			refusal := status.Errorf(status.ResourceExhausted, "promise chain of %d calls exceeds the limit of %d on this connection", depth, c.cfg.MaxChain)
			if retain && len(c.answers) < int(c.cfg.MaxRetained) {
				// Calls pipelined on this one get the same error, not an
				// unknown answer.
				a := &answer{done: make(chan struct{}), err: refusal, depth: depth}
				close(a.done)
				c.answers[h.ID] = a
			}
			return nil, refusal, nil
		}
	}
	if retain {
		if err := c.retainLocked(h.ID, depth); err != nil {
			return nil, status.New(status.ResourceExhausted, err.Error()), nil
		}
	}
	if stream {
		c.servingStreams++
	}
	sc := serverCallPool.Get().(*serverCall)
	owned := len(p) > bigWrite && c.rd.Take()
	if owned { // read into a buffer of its own: the call keeps it, no copy
		sc.buf = p
	} else {
		sc.buf = append(sc.buf[:0], p...)
	}
	wc.Rebase(p, sc.buf) // into our copy
	sc.in = Incoming{ID: h.ID, Function: wc.Function, Args: wc.Args, Timeout: wc.Timeout, Metadata: md, Conn: c,
		Target: wc.Target, HasTarget: wc.HasTarget, Promises: sc.in.Promises[:0], Caps: sc.in.Caps[:0], ArgsOwned: owned}
	if len(wc.Promises) > 0 {
		sc.in.Promises, _ = wire.ParsePromises(sc.in.Promises, wc.Promises) // checked by ParseCall
	}
	if len(wc.Caps) > 0 {
		sc.in.Caps, _ = wire.ParseCapTable(sc.in.Caps, wc.Caps)
		sc.backs = sc.backs[:0]
		for _, d := range sc.in.Caps {
			if d.Kind == wire.CapReceiverHosted {
				sc.backs = append(sc.backs, d.ID)
			}
		}
	}
	if wc.HasTarget {
		n, known := c.tickets[key]
		if !known && key.kind == wire.TargetAnswer {
			a := c.answers[key.id] // checked above; forgotten with the answer
			a.paths = append(a.paths, key.path)
			a.counted += len(key.path)
			c.retainAdd(len(key.path))
		}
		n++
		c.tickets[key] = n
		sc.in.Ticket = n
	}
	// The answers the call reads are pinned until it finishes: its
	// worker looks them up after the reader may have read their RELEASE.
	sc.pins = c.pinLocked(append(sc.pins[:0], refs...))
	sc.retained = retain
	sc.ctx = newCallCtx(c.cfg.BaseContext, wc.Timeout, md)
	sc.ctx.conn = c
	if stream {
		sc.in.Stream = newStream(c, false, sc.ctx)
		sc.in.Stream.id = h.ID
	}
	c.serving.put(h.ID, sc)
	sc.arrived = c.arrived
	c.active.Add(1)
	c.inflight.Add(1)
	return sc, nil, nil
}

// frameRefs lists the answers a parsed CALL reads (checked by ParseCall):
// a target in a promised answer, the promise table and the promised
// capabilities passed back (CapReceiverAnswer in its capability table).
func frameRefs(wc *wire.Call, dst []uint64) []uint64 {
	if wc.HasTarget && wc.Target.Kind == wire.TargetAnswer {
		dst = append(dst, wc.Target.ID)
	}
	if len(wc.Promises) > 0 {
		var ps [8]wire.PromiseRef
		list, _ := wire.ParsePromises(ps[:0], wc.Promises)
		for _, p := range list {
			dst = append(dst, p.ID)
		}
	}
	if len(wc.Caps) > 0 {
		var cs [8]wire.CapDescriptor
		list, _ := wire.ParseCapTable(cs[:0], wc.Caps)
		for _, d := range list {
			if d.Kind == wire.CapReceiverAnswer {
				dst = append(dst, d.ID)
			}
		}
	}
	return dst
}

// Targets reports how many call targets the connection tickets.
func (c *Conn) Targets() int {
	c.smu.Lock()
	defer c.smu.Unlock()
	return len(c.tickets)
}

// ForgetTarget drops the arrival count of a capability target that will
// receive no more calls (its export was released).
func (c *Conn) ForgetTarget(kind wire.TargetKind, id uint64) {
	c.smu.Lock()
	delete(c.tickets, targetKey{kind: kind, id: id})
	c.smu.Unlock()
}

// dispatchCall hands a registered call to an idle worker, or starts one.
func (c *Conn) dispatchCall(sc *serverCall) {
	select {
	case c.work <- sc:
	default:
		c.smu.Lock()
		c.workers++
		c.smu.Unlock()
		go c.worker(sc)
	}
}

// workerIdle is how long an idle worker waits for the next call before it
// exits. Short: a connection with calls less often than this pays a
// goroutine start per call (about a microsecond), while an idle
// connection holds no worker and no worker's stack.
const workerIdle = 500 * time.Millisecond

// worker serves calls until it has been idle for a while or the connection
// closes; keeping workers warm saves a goroutine start per call.
func (c *Conn) worker(sc *serverCall) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.serve(sc, false)
		idle.Reset(workerIdle)
		select {
		case sc = <-c.work:
		case <-idle.C:
			c.workerExit()
			return
		case <-c.closed:
			c.workerExit()
			return
		}
	}
}

func (c *Conn) workerExit() {
	c.smu.Lock()
	c.workers--
	c.smu.Unlock()
}

// serve runs sc and queues its answer. An inline call (on the reader, see
// inline.go) leaves the write to the reader unless much is queued.
func (c *Conn) serve(sc *serverCall, inline bool) {
	defer c.inflight.Add(-1)
	small, given := sc.out, []byte(nil)
	if len(sc.in.Args) > bigWrite && sc.in.Stream == nil {
		// A large call likely has a large answer (an echo, a transform):
		// the handler appends it to a recycled buffer of the call's size
		// instead of growing a new one.
		given = getBig(len(sc.in.Args) + 64)
		sc.out = given
	}
	var began time.Time
	if sc.st != nil {
		began = now()
	}
	out, err := c.invoke(sc, began)
	if sc.st != nil {
		d := time.Since(began)
		sc.st.record(d)
		if c.cfg.Observer != nil { // its too: from the arrival, without reading again
			sc.ob.info.elapsed = began.Sub(sc.ob.info.Start) + d
		}
		sc.st = nil
	}
	tail := sc.in.ResultTail
	if err != nil {
		tail = nil
	} else if len(tail) > 0 && (sc.retained || sc.in.Stream != nil) {
		// Only a unary answer that is not retained is written in two
		// parts; any other is whole from here on.
		out, tail = append(out, tail...), nil
	}
	if c.cfg.Observer != nil {
		c.endIncoming(sc, len(out)+len(tail), err)
	}
	// Only a result in the buffer given (not one the handler allocated or
	// a slice it returned from elsewhere) goes back to bigBufs.
	recycle := given != nil && cap(out) > 0 && &out[:1][0] == &given[:1][0]
	trailer := sc.ctx.trailers()
	if len(trailer) > 0 {
		if terr := wire.CheckMetadata(trailer); terr != nil {
			// Sent, they would be a protocol error to the caller, closing
			// the connection: the call fails instead.
			trailer, tail = nil, nil
			err = status.Errorf(status.Internal, "%q: trailers: %v", sc.in.Function, terr)
		}
	}
	if sc.in.Stream != nil {
		sc.in.Stream.finish(nil, status.New(status.Canceled, "stream handler returned"))
	}
	sc.ctx.cancel(context.Canceled) // the handler is done; release its resources
	caps := sc.in.ResultCaps
	if err != nil {
		caps = nil
	}
	kept := false // the retained answer holds the result's capabilities
	if sc.retained {
		c.settle(sc.in.ID, out, caps, err)
		kept = err == nil
	}
	if err == nil && len(out)+len(tail)+mdSize(trailer)+capsSize(caps) > int(c.peerMaxFrame) {
		err = status.Errorf(status.ResourceExhausted, "result of %s is %d bytes, over the peer's frame limit of %d", sc.in.Function, len(out)+len(tail), c.peerMaxFrame)
		tail = nil
	}
	if err != nil {
		err, trailer = c.fitError(err, trailer)
		if !kept && len(sc.in.ResultCaps) > 0 {
			// The answer goes out as an error: the peer never learns
			// of the exports made for the result, so never releases them.
			c.dropExports(sc.in.ResultCaps)
		}
	}
	// The result counts against the memory budget until it is written to
	// the socket (see writeLocked); the request copy no longer does.
	reply := len(out) + len(tail) + mdSize(trailer) + wire.HeaderSize
	if d := reply - sc.charged; d >= 0 { // one account move, not two
		c.charge(d)
	} else {
		c.unreserve(-d)
	}
	sc.charged = 0
	// The call no longer counts against the concurrency limit once its
	// answer is queued (below, before the write lock is released, so the
	// caller cannot have it sooner): a caller that got it may send the
	// next call at once. Not before: a worker waiting for room in a full
	// queue (a peer that does not read) is a call still served.
	if c.lockForAppend() == nil {
		switch {
		case tail != nil:
			// The handler's own bytes are copied, its tail is copied
			// too (once: it was never appended to out) or, when large,
			// goes out from where it lies.
			c.wbuf = wire.AppendResultHeader(c.wbuf, sc.in.ID, len(out)+len(tail), trailer, caps)
			c.wbuf = append(c.wbuf, out...)
			if len(tail) > bigWrite {
				c.queueRef(tail)
			} else {
				c.wbuf = append(c.wbuf, tail...)
			}
			if recycle {
				putBig(out)
			}
		case err == nil && len(out) > bigWrite:
			// A large result goes out from where it lies: out is not
			// kept for reuse (below), so nothing changes it.
			c.wbuf = wire.AppendResultHeader(c.wbuf, sc.in.ID, len(out), trailer, caps)
			c.queueRef(out)
			c.wsegs[len(c.wsegs)-1].recycle = recycle // by the writer, once written
		default:
			c.wbuf = appendAnswer(c.wbuf, sc.in.ID, out, err, trailer, caps)
			if recycle { // copied into wbuf
				putBig(out)
			}
		}
		c.wcharged += reply
		c.active.Add(^uint32(0))
		if inline && len(c.wbuf)+c.wsegBytes < inlineFlushAt {
			c.wmu.Unlock()
		} else {
			c.flushLocked()
		}
	} else {
		c.active.Add(^uint32(0))
		c.unreserve(reply)
		if recycle {
			putBig(out)
		}
	}
	if cap(out) <= 64<<10 {
		sc.out = out[:0]
	} else {
		sc.out = small // a large buffer is not kept with the call
	}
	c.smu.Lock()
	c.serving.take(sc.in.ID)
	if sc.in.Stream != nil {
		c.servingStreams--
	}
	unpinned := c.unpinLocked(sc.pins) || len(sc.backs) > 0 || sc.in.HasTarget && sc.in.Target.Kind == wire.TargetExport
	if c.draining && c.serving.len() == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	forgot := len(c.dropped) > 0
	c.smu.Unlock()
	if unpinned {
		if u, ok := c.cfg.Handler.(Unpinner); ok {
			u.Unpinned(c)
		}
	}
	if forgot {
		c.notifyForgotten()
	}
	sc.in = Incoming{Promises: sc.in.Promises[:0], Caps: sc.in.Caps[:0]}
	sc.ctx = nil
	sc.retained = false
	sc.pins = sc.pins[:0]
	sc.backs = sc.backs[:0] // out of c.serving: ExportPinned no longer reads it
	if cap(sc.buf) > 64<<10 {
		sc.buf = nil
	}
	serverCallPool.Put(sc)
}

// invoke runs the handler, turning a panic into an Internal error.
// began is when the call was timed from (zero: it is not).
func (c *Conn) invoke(sc *serverCall, began time.Time) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.cfg.Logger.Error("arbor: handler panicked", "function", string(sc.in.Function), "panic", r, "stack", string(debug.Stack()))
			out, err = nil, status.Errorf(status.Internal, "handler for %q panicked: %v", sc.in.Function, r)
		}
	}()
	if c.cfg.Handler == nil {
		return nil, status.Errorf(status.Unimplemented, "this peer serves no calls")
	}
	if c.cfg.Observer != nil {
		return c.cfg.Handler.ServeCall(c.startIncoming(sc, began), &sc.in, sc.out[:0])
	}
	return c.cfg.Handler.ServeCall(sc.ctx, &sc.in, sc.out[:0])
}

// dropExports releases this side's exports in caps (a result table that
// was not sent) as if the peer had; no lock held.
func (c *Conn) dropExports(caps []wire.CapDescriptor) {
	r, ok := c.cfg.Handler.(Releaser)
	if !ok {
		return
	}
	for _, d := range caps {
		if d.Kind == wire.CapSenderHosted {
			r.Release(c, d.ID, 1)
		}
	}
}

// capsSize bounds the encoded size of a capability table.
func capsSize(caps []wire.CapDescriptor) int {
	if len(caps) == 0 {
		return 0
	}
	n := 3 // the count
	for _, d := range caps {
		n += 12 + len(d.Path) // kind, id, path (or the empty one)
	}
	return n
}

// fitError shortens an error whose ERROR frame would be over the peer's
// frame limit (a long message, large details or trailers), which the peer
// refuses as a protocol error, closing the connection: trailers too large
// go, then the details, then the message's end.
func (c *Conn) fitError(err error, trailer []wire.MD) (*status.Error, []wire.MD) {
	e := status.FromError(err)
	room := int(c.peerMaxFrame) - 16 // code, flags, message length
	if mdSize(trailer) > room/2 {
		trailer = nil
	}
	room -= mdSize(trailer)
	if len(e.Message)+len(e.Details) <= room {
		return e, trailer
	}
	short := *e // not the handler's: it may be shared
	short.Details = nil
	if len(short.Message) > room {
		const cut = " … (truncated)"
		short.Message = strings.ToValidUTF8(short.Message[:room-len(cut)], "") + cut
	}
	return &short, trailer
}

// appendAnswer appends the RESULT (err nil) or ERROR frame of call id.
func appendAnswer(dst []byte, id uint64, out []byte, err error, trailer []wire.MD, caps []wire.CapDescriptor) []byte {
	if err != nil {
		e := status.FromError(err)
		return wire.AppendError(dst, id, wire.ErrorPayload{Code: uint32(e.Code), Retryable: e.Retryable,
			Category: status.CategoryID(e.Category), Message: []byte(e.Message), Details: e.Details}, trailer...)
	}
	return wire.AppendResult(dst, id, out, trailer, caps)
}

func (c *Conn) sendError(id uint64, e *status.Error, trailer ...wire.MD) {
	if c.lockForAppend() != nil {
		return
	}
	c.wbuf = wire.AppendError(c.wbuf, id, wire.ErrorPayload{Code: uint32(e.Code), Retryable: e.Retryable,
		Category: status.CategoryID(e.Category), Message: []byte(e.Message), Details: e.Details}, trailer...)
	c.flushLocked()
}

func (c *Conn) cancelIncoming(id uint64, cause error) {
	c.smu.Lock()
	if sc := c.serving.get(id); sc != nil {
		sc.ctx.cancel(cause)
	}
	c.smu.Unlock()
}

// Drain stops accepting calls (GOAWAY), waits for running calls to finish
// or ctx to end, then closes the connection. Calls that arrive after the
// GOAWAY are refused with a retryable Unavailable.
func (c *Conn) Drain(ctx context.Context, reason string) error {
	// Going into drain and queueing GOAWAY happen under smu, so no call is
	// refused before the GOAWAY that explains the refusal is queued (the
	// peer would otherwise retry on this connection).
	c.smu.Lock()
	var wait chan struct{}
	if !c.draining {
		c.draining = true
		if c.serving.len() > 0 {
			c.drained = make(chan struct{})
		}
		// Queued without waiting for room (we hold smu; the writer never
		// needs it) and written by writeLoop: Drain must not block on a
		// peer that stops reading, only on ctx.
		c.wmu.Lock()
		if c.werr == nil {
			c.wbuf = wire.AppendGoAway(c.wbuf, wire.GoAway{LastID: c.lastIn, Code: uint32(status.Unavailable), Message: []byte(reason)})
		}
		c.wmu.Unlock()
		c.observeGoAway(true, uint32(status.Unavailable), []byte(reason))
	}
	wait = c.drained
	c.smu.Unlock()
	c.wmu.Lock()
	c.flushLazyLocked()
	var err error
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			err = ctx.Err()
		case <-c.closed:
		}
	}
	if err == nil {
		c.lastWrites(time.Second)
		c.flushNow() // the last results may still be queued for writeLoop
		c.closeWriteAndWait(time.Second)
	}
	c.Close()
	return err
}

// Serving is the number of incoming calls running now.
func (c *Conn) Serving() int {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.serving.len()
}

// maxTargets bounds the distinct capability targets a connection tracks.
const maxTargets = 100000

// holdEarly marks a call read before the handshake completed (0-RTT data)
// and, unless the handler may serve it early, waits for the handshake.
// The reader waits with it: the calls behind it keep their order. A
// handshake that does not complete drops the call (and the connection):
// it may be a replay.
func (c *Conn) holdEarly(sc *serverCall) error {
	select {
	case <-c.early:
		return nil
	default:
	}
	sc.in.Early = true
	if ec, ok := c.cfg.Handler.(EarlyChecker); ok && !sc.in.HasTarget && len(sc.in.Promises) == 0 && ec.ServeEarly(&sc.in) {
		return nil
	}
	t := time.NewTimer(c.cfg.HandshakeTimeout)
	defer t.Stop()
	select {
	case <-c.early:
		return nil
	case <-c.closed:
	case <-t.C:
	}
	return fmt.Errorf("call %d (%q) arrived in 0-RTT data and the handshake did not complete in %v; not served", sc.in.ID, sc.in.Function, c.cfg.HandshakeTimeout)
}
