package conn

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime/debug"
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
	Function []byte
	Args     []byte
	Timeout  time.Duration // zero when the caller set no deadline
	Metadata []wire.MD
	Conn     *Conn
	// Stream is set when the caller opened a stream; the handler sends and
	// receives on it, and its return ends the stream.
	Stream *Stream
	// Pipelined says Args hold promise references (wire.PromiseExt) to be
	// replaced by the referenced answers (Conn.Answer) before use.
	Pipelined bool
}

// serverCall is one incoming call; pooled.
type serverCall struct {
	pins     []uint64 // retained answers this call reads (pinned)
	retained bool     // keep the answer for pipelined calls
	w        net.Conn // the native stream the call came on, if any
	in       Incoming
	buf      []byte // a copy of the CALL payload; in's slices point into it
	out      []byte
	ctx      *callCtx
}

var serverCallPool = sync.Pool{New: func() any { return new(serverCall) }}

// incoming registers a CALL read from the shared byte stream and hands it
// to a worker.
func (c *Conn) incoming(h wire.Header, p []byte) error {
	sc, refusal, err := c.admit(h, p, nil)
	if err != nil {
		return err
	}
	if refusal != nil {
		c.sendError(h.ID, refusal)
		return nil
	}
	c.dispatchCall(sc)
	return nil
}

// admit checks a CALL and registers it. A malformed frame is an error (a
// protocol error on a shared stream); a call the connection will not serve
// now (draining, limits) gets a refusal. w, when set, is the native stream
// the call arrived on and its answer goes to.
func (c *Conn) admit(h wire.Header, p []byte, w net.Conn) (*serverCall, *status.Error, error) {
	if h.ID%2 == c.myParity() {
		return nil, nil, fmt.Errorf("CALL id %d has this side's parity", h.ID)
	}
	wc, err := wire.ParseCall(p)
	if err != nil {
		return nil, nil, err
	}
	var md []wire.MD
	if len(wc.Metadata) > 1 || (len(wc.Metadata) == 1 && wc.Metadata[0] != 0) {
		if md, err = wire.ParseMetadata(nil, wc.Metadata); err != nil {
			return nil, nil, err
		}
	}

	c.smu.Lock()
	defer c.smu.Unlock()
	if w == nil {
		if h.ID <= c.lastIn {
			return nil, nil, fmt.Errorf("CALL id %d reuses or precedes id %d", h.ID, c.lastIn)
		}
	} else if c.serving[h.ID] != nil { // native streams arrive in any order
		return nil, nil, fmt.Errorf("CALL id %d is already running", h.ID)
	}
	c.lastIn = max(c.lastIn, h.ID)
	switch {
	case c.draining:
		return nil, &status.Error{Code: status.Unavailable, Retryable: true, Message: "server is shutting down"}, nil
	case c.active >= c.cfg.MaxConcurrent:
		return nil, status.Errorf(status.ResourceExhausted, "too many concurrent calls on this connection (limit %d)", c.cfg.MaxConcurrent), nil
	case h.Flags&wire.FlagStream != 0 && c.servingStreams >= c.cfg.MaxConcurrentStreams:
		return nil, status.Errorf(status.ResourceExhausted, "too many concurrent streams on this connection (limit %d)", c.cfg.MaxConcurrentStreams), nil
	}
	if h.Flags&wire.FlagRetain != 0 {
		if err := c.retainLocked(h.ID); err != nil {
			return nil, status.New(status.ResourceExhausted, err.Error()), nil
		}
	}
	if h.Flags&wire.FlagStream != 0 {
		c.servingStreams++
	}
	sc := serverCallPool.Get().(*serverCall)
	// Calls that read retained answers (promise arguments, or a promised
	// capability as target) pin them until they finish.
	sc.pins = answerRefs(wc.Function, wc.Args, h.Flags&wire.FlagPipelined != 0, sc.pins[:0])
	c.pinLocked(sc.pins)
	sc.buf = append(sc.buf[:0], p...)
	wc, _ = wire.ParseCall(sc.buf) // re-slice into our copy; parsed once already
	sc.in = Incoming{ID: h.ID, Function: wc.Function, Args: wc.Args, Timeout: wc.Timeout, Metadata: md, Conn: c,
		Pipelined: h.Flags&wire.FlagPipelined != 0}
	sc.retained = h.Flags&wire.FlagRetain != 0
	sc.ctx = newCallCtx(c.cfg.BaseContext, wc.Timeout, md)
	sc.ctx.conn = c
	if len(wc.Function) > 1 && wc.Function[0] == '@' { // a call on a capability: ticket it
		target := wc.Function
		if i := bytes.IndexByte(target, '.'); i > 0 {
			target = target[:i]
		}
		if _, known := c.tickets[string(target)]; !known && len(c.tickets) >= maxTargets {
			// A peer naming ever new targets cannot grow the table.
			refusal := status.Errorf(status.ResourceExhausted, "too many capability targets on this connection (limit %d)", maxTargets)
			c.servingStreams -= boolInt(h.Flags&wire.FlagStream != 0)
			c.unpinLocked(sc.pins)
			delete(c.answers, h.ID) // if it asked to be retained
			sc.in, sc.ctx = Incoming{}, nil
			serverCallPool.Put(sc)
			return nil, refusal, nil
		}
		c.tickets[string(target)]++
		sc.ctx.ticket = c.tickets[string(target)]
	}
	sc.w = w
	if h.Flags&wire.FlagStream != 0 {
		sc.in.Stream = newStream(c, h.ID, false, sc.ctx)
		sc.in.Stream.w = w
	}
	c.serving[h.ID] = sc
	c.active++
	c.inflight.Add(1)
	return sc, nil, nil
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

const workerIdle = 30 * time.Second

// worker serves calls until it has been idle for a while or the connection
// closes; keeping workers warm saves a goroutine start per call.
func (c *Conn) worker(sc *serverCall) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.serve(sc)
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

func (c *Conn) serve(sc *serverCall) {
	defer c.inflight.Add(-1)
	out, err := c.invoke(sc)
	trailer := sc.ctx.trailers()
	if sc.in.Stream != nil {
		sc.in.Stream.finish(nil, status.New(status.Canceled, "stream handler returned"))
	}
	sc.ctx.cancel(context.Canceled) // the handler is done; release its resources
	if sc.retained {
		c.settle(sc.in.ID, out, err)
	}
	// The call no longer counts against the limit once its answer is on
	// its way: a caller that got it may send the next call at once.
	c.smu.Lock()
	c.active--
	c.smu.Unlock()
	if err == nil && len(out)+mdSize(trailer) > int(c.peerMaxFrame) {
		err = status.Errorf(status.ResourceExhausted, "result of %s is %d bytes, over the peer's frame limit of %d", sc.in.Function, len(out), c.peerMaxFrame)
	}
	if sc.w != nil { // a native stream: answer on it and close it
		fb := frameBufs.Get().(*frameBuf)
		fb.b = appendAnswer(fb.b[:0], sc.in.ID, out, err, trailer)
		sc.w.Write(fb.b)
		frameBufs.Put(fb)
		// Half-close only: the stream's reader closes it once the caller
		// has read the answer and closed its side, which is what a drain
		// waits for (closing the connection earlier would lose the answer).
		if cw, ok := sc.w.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			sc.w.Close()
		}
	} else if c.lockForAppend() == nil {
		c.wbuf = appendAnswer(c.wbuf, sc.in.ID, out, err, trailer)
		c.flushLocked()
	}
	if cap(out) <= 64<<10 {
		sc.out = out[:0]
	}
	c.smu.Lock()
	delete(c.serving, sc.in.ID)
	if sc.in.Stream != nil {
		c.servingStreams--
	}
	c.unpinLocked(sc.pins)
	if c.draining && len(c.serving) == 0 && c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
	c.smu.Unlock()
	sc.in = Incoming{}
	sc.ctx = nil
	sc.w = nil
	sc.retained = false
	sc.pins = sc.pins[:0]
	if cap(sc.buf) > 64<<10 {
		sc.buf = nil
	}
	serverCallPool.Put(sc)
}

// invoke runs the handler, turning a panic into an Internal error.
func (c *Conn) invoke(sc *serverCall) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.cfg.Logger.Error("arbor: handler panicked", "function", string(sc.in.Function), "panic", r, "stack", string(debug.Stack()))
			out, err = nil, status.Errorf(status.Internal, "handler for %q panicked: %v", sc.in.Function, r)
		}
	}()
	if c.cfg.Handler == nil {
		return nil, status.Errorf(status.Unimplemented, "this peer serves no calls")
	}
	return c.cfg.Handler.ServeCall(sc.ctx, &sc.in, sc.out[:0])
}

// appendAnswer appends the RESULT (err nil) or ERROR frame of call id.
func appendAnswer(dst []byte, id uint64, out []byte, err error, trailer []wire.MD) []byte {
	if err != nil {
		e := status.FromError(err)
		return wire.AppendError(dst, id, wire.ErrorPayload{Code: uint32(e.Code), Retryable: e.Retryable,
			Category: status.CategoryID(e.Category), Message: []byte(e.Message), Details: e.Details}, trailer...)
	}
	if len(trailer) == 0 {
		return wire.AppendFrame(dst, wire.TypeResult, 0, id, out)
	}
	dst, at := wire.BeginFrame(dst, wire.TypeResult, wire.FlagMetadata, id)
	dst = wire.AppendMetadata(dst, trailer)
	dst = append(dst, out...)
	wire.EndFrame(dst, at)
	return dst
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
	if sc := c.serving[id]; sc != nil {
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
		if len(c.serving) > 0 {
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
	if c.mux != nil && err == nil {
		// Native streams: wait until callers have read their answers
		// (a counter, polled: streams may still be accepted meanwhile).
		tick := time.NewTicker(5 * time.Millisecond)
		limit := time.NewTimer(5 * time.Second)
	wait:
		for c.muxStreams.Load() > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				err = ctx.Err()
				break wait
			case <-c.closed:
				break wait
			case <-limit.C:
				break wait
			}
		}
		tick.Stop()
		limit.Stop()
		if err != nil || c.Err() != nil {
			c.Close()
			return err
		}
	}
	if err == nil {
		c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		c.flushNow() // the last results may still be queued for writeLoop
	}
	c.Close()
	return err
}

// Serving is the number of incoming calls running now.
func (c *Conn) Serving() int {
	c.smu.Lock()
	defer c.smu.Unlock()
	return len(c.serving)
}

// maxTargets bounds the distinct capability targets a connection tracks.
const maxTargets = 100000

func boolInt(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
