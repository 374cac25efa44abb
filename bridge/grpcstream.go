package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
)

// One call on the native gRPC server: the stream opened by its HEADERS,
// the messages its DATA frames carry, the handler's goroutine, and the
// arbor.Stream a streaming handler runs on.

// nativeMethod is a procedure the native server serves.
type nativeMethod struct {
	id   string
	kind arbor.Kind
}

// native returns the method of a :path, if h serves it (cached once
// found; the lookup is the connect-go path's).
func (h *Handler) native(path string) (nativeMethod, bool) {
	if m, ok := h.natives.Load(path); ok {
		return m.(nativeMethod), true
	}
	f, ok := h.srv.Function(path)
	if !ok {
		return nativeMethod{}, false
	}
	if _, ok := h.method(f); !ok {
		return nativeMethod{}, false
	}
	m := nativeMethod{id: f.ID, kind: f.Kind}
	h.natives.Store(path, m)
	return m, true
}

// gstream is one stream. The reader alone touches the fields marked so;
// c.mu guards the send side; qmu the received messages.
type gstream struct {
	c       *gconn
	id      uint32
	m       nativeMethod
	ctx     context.Context
	cancel  context.CancelCauseFunc
	tcancel context.CancelFunc // the grpc-timeout's, or nil
	fields  []hpack.HeaderField

	// Under c.mu.
	sendWindow  int64
	headersSent bool
	partial     bool // a message is partly queued, waiting for window
	done        bool // trailers sent, or reset
	remoteDone  bool // END_STREAM or RST_STREAM from the client
	finalized   bool // ended with the handler done: out of the table
	launched    bool // the handler was started (start sets it, expire reads it)
	stopWake    func() bool

	// Reader only.
	stopExpire func() bool // stops expire's watch of the deadline, or nil
	started    bool
	released   bool
	hdr        [5]byte
	hdrN       int
	cur        []byte // the message being read: [0x91, bin header, bytes...]
	need       int    // its bytes still to come
	nmsg       int
	args       []byte // unary and server stream: the argument array

	// Under qmu: the messages the handler has yet to Recv.
	qmu        sync.Mutex
	q          [][]byte
	eof        bool
	qerr       error
	ready      chan struct{}
	recvWindow int64
	unacked    int64 // received, not yet credited back
	held       int64 // received while messages wait: credited when taken
	// resv is what the stream holds of the server's MaxMemory: the
	// messages being read and waiting for the handler; budgetDone says
	// the stream gave it all back (released) and takes no more.
	resv       int64
	budgetDone bool
}

// reserve takes n bytes of the server's MaxMemory for a message being
// read, or reports false.
func (st *gstream) reserve(n int) bool {
	st.qmu.Lock()
	defer st.qmu.Unlock()
	if st.budgetDone {
		return true // the stream is over: its bytes are dropped
	}
	if !st.c.s.take(int64(n)) {
		return false
	}
	st.resv += int64(n)
	return true
}

// unreserve gives back n bytes (a message the handler took); with n < 0,
// everything, for good (the stream is over).
func (st *gstream) unreserve(n int64) {
	st.qmu.Lock()
	if n < 0 || n > st.resv {
		n = st.resv
	}
	if n < 0 {
		n = 0
	}
	st.resv -= n
	st.qmu.Unlock()
	st.c.s.held.Add(-n)
}

// reserved is what a queued message m (a msgpack bin) holds of the
// budget: its payload and the 6 bytes reserved for its headers.
func reserved(m []byte) int64 {
	hdr := 2 // bin 8
	if len(m) > 0 {
		switch m[0] {
		case 0xc5:
			hdr = 3
		case 0xc6:
			hdr = 5
		}
	}
	return int64(max(len(m)-hdr, 0) + 1 + 5)
}

// budgetRefusal is the message of a stream refused for MaxMemory.
func (st *gstream) budgetRefusal() string {
	return fmt.Sprintf("the server holds its limit of request messages (GRPCConfig.MaxMemory, %d bytes) from all clients: try again later", st.c.cfg.MaxMemory)
}

// open starts a stream for a request's HEADERS, or answers it at once
// with a trailers-only response when it cannot be served.
func (c *gconn) open(f *http2.MetaHeadersFrame) error {
	id, ended := f.StreamID, f.StreamEnded()
	if f.Truncated {
		c.refuse(id, ended, 200, arbor.ResourceExhausted, fmt.Sprintf("the request's header list exceeds %d bytes", c.cfg.MaxHeaderListBytes))
		return nil
	}
	var method, path, ctype, timeout string
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":path":
			path = hf.Value
		case "content-type":
			ctype = hf.Value
		case "grpc-timeout":
			timeout = hf.Value
		}
	}
	if method != "POST" {
		c.refuse(id, ended, 405, arbor.Internal, fmt.Sprintf("gRPC calls are POSTs, not %q", clip(method)))
		return nil
	}
	sub, ok := grpcSubtype(ctype)
	if !ok {
		c.refuse(id, ended, 415, arbor.Internal, fmt.Sprintf("content-type %q is not application/grpc", clip(ctype)))
		return nil
	}
	if sub != "" && sub != "proto" {
		c.refuse(id, ended, 200, arbor.Unimplemented, fmt.Sprintf("the native gRPC server speaks protobuf binary only, not %q (the HTTP bridge serves the others)", clip(ctype)))
		return nil
	}
	m, ok := c.h.native(path)
	if !ok {
		c.refuse(id, ended, 200, arbor.Unimplemented, "unknown method "+strconv.Quote(clip(path)))
		return nil
	}
	st := &gstream{c: c, id: id, m: m, fields: f.Fields, recvWindow: int64(c.cfg.StreamWindow)}
	st.ctx, st.cancel = context.WithCancelCause(c.ctx)
	if timeout != "" {
		d, err := parseTimeout(timeout)
		if err != nil {
			st.cancel(nil)
			c.refuse(id, ended, 200, arbor.Internal, clip(err.Error()))
			return nil
		}
		st.ctx, st.tcancel = context.WithTimeout(st.ctx, d)
	}
	c.mu.Lock()
	st.sendWindow = int64(c.peerWindow)
	st.remoteDone = ended
	c.streams[id] = st
	c.mu.Unlock()
	if st.tcancel != nil && !ended && (m.kind == arbor.KindUnary || m.kind == arbor.KindServerStream) {
		// Its handler starts only once the request has ended: until then
		// the deadline is watched here (after the stream is in the table,
		// which expire takes it out of).
		st.stopExpire = context.AfterFunc(st.ctx, st.expire)
	}
	if m.kind == arbor.KindClientStream || m.kind == arbor.KindBidiStream {
		st.ready = make(chan struct{}, 1)
		st.eof = ended
		st.start()
	} else if ended {
		st.endRemote()
	}
	return nil
}

// Verdicts of acceptLocked on a DATA frame or the client's trailers.
const (
	frameTake   = iota // read it
	frameDrop          // the stream is answered or reset: drop it
	frameClosed        // after END_STREAM: a stream error
)

// acceptLocked judges a frame for st, marking END_STREAM; c.mu is held
// (the reader's one lock for the frame).
func (st *gstream) acceptLocked(end bool) int {
	switch {
	case st.done:
		st.remoteDone = st.remoteDone || end
		return frameDrop
	case st.remoteDone:
		return frameClosed
	}
	st.remoteDone = end
	return frameTake
}

// onData takes a DATA frame's payload (n bytes on the wire, padding
// included) or, with data nil, the client's trailers, as acceptLocked
// judged it. Reader only.
func (st *gstream) onData(verdict int, data []byte, n int64, end bool) error {
	c := st.c
	switch verdict {
	case frameDrop:
		return nil
	case frameClosed:
		st.resetByPeer(errors.New("DATA after END_STREAM"))
		c.writeRST(st.id, http2.ErrCodeStreamClosed)
		return nil
	}
	st.qmu.Lock()
	if n > st.recvWindow {
		st.qmu.Unlock()
		st.resetByPeer(fmt.Errorf("DATA of %d bytes over the stream's window of %d", n, st.recvWindow))
		c.writeRST(st.id, http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWindow -= n
	st.qmu.Unlock()
	if code, msg := st.parse(data); code != arbor.OK {
		st.fail(code, msg)
		return nil
	}
	if n > 0 && !end {
		st.credit(n)
	}
	if end {
		st.endRemote()
	}
	return nil
}

// parse cuts data into messages. Every length is checked against the
// limit, and the buffer grows with the bytes that came, not with the
// length the prefix claims.
func (st *gstream) parse(data []byte) (arbor.Code, string) {
	for len(data) > 0 {
		if st.cur == nil {
			k := copy(st.hdr[st.hdrN:], data)
			st.hdrN += k
			data = data[k:]
			if st.hdrN < 5 {
				return arbor.OK, ""
			}
			st.hdrN = 0
			switch st.hdr[0] {
			case 0:
			case 1:
				return arbor.Unimplemented, "a compressed message: the native gRPC server supports no compression (send uncompressed, grpc-encoding identity)"
			default:
				return arbor.Internal, fmt.Sprintf("message flags %#x: only 0 and 1 are defined", st.hdr[0])
			}
			size := binary.BigEndian.Uint32(st.hdr[1:])
			if max := st.c.h.cfg.MaxMessageBytes; uint64(size) > uint64(max) {
				return arbor.ResourceExhausted, fmt.Sprintf("a request message of %d bytes exceeds the limit of %d bytes", size, max)
			}
			if st.nmsg > 0 && (st.m.kind == arbor.KindUnary || st.m.kind == arbor.KindServerStream) {
				return arbor.Unimplemented, fmt.Sprintf("more than one request message for %s, which takes one", st.m.id)
			}
			st.need = int(size)
			if !st.reserve(1 + 5) {
				return arbor.ResourceExhausted, st.budgetRefusal()
			}
			st.cur = make([]byte, 0, 1+5+min(st.need, len(data)))
			st.cur = append(st.cur, 0x91) // the argument array of one
			st.cur = arborproto.AppendBinHeader(st.cur, st.need)
		}
		k := min(st.need, len(data))
		if !st.reserve(k) {
			return arbor.ResourceExhausted, st.budgetRefusal()
		}
		st.cur = append(st.cur, data[:k]...)
		st.need -= k
		data = data[k:]
		if st.need == 0 {
			st.deliver(st.cur)
			st.cur = nil
		}
	}
	return arbor.OK, ""
}

// deliver hands one whole message on.
func (st *gstream) deliver(msg []byte) {
	st.nmsg++
	if st.m.kind == arbor.KindUnary || st.m.kind == arbor.KindServerStream {
		st.args = msg
		return
	}
	st.qmu.Lock()
	st.q = append(st.q, msg[1:]) // a stream message is the bin alone
	st.qmu.Unlock()
	st.wake()
}

func (st *gstream) wake() {
	select {
	case st.ready <- struct{}{}:
	default:
	}
}

// credit gives n received bytes back to the client's window, unless
// messages wait for the handler: then they are credited as it takes
// them, so a handler that does not read stops its caller.
func (st *gstream) credit(n int64) {
	st.qmu.Lock()
	if len(st.q) > 0 {
		st.held += n
		st.qmu.Unlock()
		return
	}
	st.unacked += n
	inc := int64(0)
	if st.unacked >= int64(st.c.cfg.StreamWindow/4) {
		inc, st.unacked = st.unacked, 0
		st.recvWindow += inc
	}
	st.qmu.Unlock()
	if inc > 0 {
		st.c.writeWindowUpdate(st.id, inc)
	}
}

// endRemote is the client's END_STREAM. Reader only.
func (st *gstream) endRemote() {
	if st.cur != nil || st.hdrN > 0 {
		st.fail(arbor.Internal, "the request ended inside a message")
		return
	}
	switch st.m.kind {
	case arbor.KindUnary, arbor.KindServerStream:
		if st.nmsg == 0 {
			st.fail(arbor.Internal, "the request ended without its message")
			return
		}
		st.start()
	default:
		st.qmu.Lock()
		st.eof = true
		st.qmu.Unlock()
		st.wake()
	}
}

// fail ends the stream with a status of the server's, now.
func (st *gstream) fail(code arbor.Code, msg string) {
	st.finish(code, msg, nil, nil, !st.started)
	st.stop(arbor.NewError(code, msg))
}

// resetByPeer ends the stream without a word: the client reset it, or
// broke its rules.
func (st *gstream) resetByPeer(cause error) {
	c := st.c
	c.mu.Lock()
	st.done, st.remoteDone = true, true
	c.cond.Broadcast()
	c.mu.Unlock()
	st.stop(arbor.NewError(arbor.Canceled, cause.Error()))
}

// stop cancels the handler (or releases a stream never started).
func (st *gstream) stop(cause error) {
	st.cancel(cause)
	st.qmu.Lock()
	if st.qerr == nil {
		st.qerr = cause
	}
	st.qmu.Unlock()
	if st.ready != nil {
		st.wake()
	}
	if !st.started && !st.released {
		st.released = true
		st.release()
	}
}

// start runs the handler on its own goroutine, unless the stream ended
// meanwhile (expire answered it as the last of its request came in).
func (st *gstream) start() {
	if st.stopExpire != nil {
		st.stopExpire()
		st.stopExpire = nil
	}
	c := st.c
	c.mu.Lock()
	done := st.done
	st.launched = !done
	c.mu.Unlock()
	if done {
		st.stop(arbor.Errorf(arbor.DeadlineExceeded, "the call's deadline passed"))
		return
	}
	st.started = true
	st.c.hwg.Add(1)
	go st.run()
}

func (st *gstream) run() {
	defer st.c.hwg.Done()
	defer st.release()
	ictx := arbor.InboundContext(st.ctx, fieldMetadata(st.fields), st.c.peer)
	st.fields = nil
	srv := st.c.h.srv
	var res []byte
	var err error
	hasResult := false
	switch st.m.kind {
	case arbor.KindUnary:
		res, err = srv.Invoke(ictx, st.m.id, st.args)
		hasResult = true
	case arbor.KindServerStream:
		_, err = srv.InvokeStream(ictx, st.m.id, st.args, st)
	case arbor.KindClientStream:
		res, err = srv.InvokeStream(ictx, st.m.id, nil, st)
		hasResult = true
	default:
		_, err = srv.InvokeStream(ictx, st.m.id, nil, st)
	}
	st.args = nil
	md := trailerMetadata(ictx)
	if err == nil && hasResult {
		b, uerr := unbin(res)
		if uerr != nil {
			err = arbor.Errorf(arbor.Internal, "%s: the result is not a protobuf message: %v", st.m.id, uerr)
		} else if err = st.sendMessage(b, true, md); err == nil {
			return
		}
		// A result that could not go out (the deadline passed, say) still
		// ends the call: trailers with why, or RST_STREAM when part of it
		// is out (finish does nothing once the stream has ended).
	}
	if err == nil {
		st.finish(arbor.OK, "", nil, md, true)
		return
	}
	code, msg, details := grpcStatus(err)
	st.finish(code, msg, details, md, true)
}

// expire answers a unary or server-stream call whose deadline passed
// while its request was still coming in (its handler not started):
// DEADLINE_EXCEEDED now, as gRPC servers do, rather than when the client
// ends the request; the stream stops holding its slot and its memory. A
// stream canceled otherwise is ended by whoever canceled it.
func (st *gstream) expire() {
	if !errors.Is(st.ctx.Err(), context.DeadlineExceeded) {
		return
	}
	c := st.c
	if c.lockForAppend() != nil {
		return
	}
	if st.done || st.launched {
		c.mu.Unlock()
		return
	}
	st.endLocked(arbor.DeadlineExceeded, "the call's deadline passed before its request ended", nil, nil, true)
	c.flushEndLocked()
	st.release()
}

// release forgets the stream; the connection closes once the last
// stream of a GOAWAY is done.
func (st *gstream) release() {
	c := st.c
	st.qmu.Lock()
	st.budgetDone = true // what the reader still appends is dropped with the stream
	st.qmu.Unlock()
	st.unreserve(-1)
	if st.finalized { // endLocked did the table's part
		st.cancel(context.Canceled)
		if st.tcancel != nil {
			st.tcancel()
		}
		return
	}
	c.mu.Lock()
	delete(c.streams, st.id)
	if st.stopWake != nil {
		st.stopWake()
		st.stopWake = nil
	}
	st.done = true
	st.cancel(context.Canceled)
	if st.tcancel != nil {
		st.tcancel()
	}
	if c.goingAway && len(c.streams) == 0 && !c.closed {
		c.closeAfter = true
		c.flushLocked(false)
		return
	}
	c.mu.Unlock()
}

// sendableLocked reports why st may send no more, if so.
func (st *gstream) sendableLocked() error {
	switch {
	case st.c.werr != nil:
		return arbor.Errorf(arbor.Unavailable, "the gRPC connection failed: %v", st.c.werr)
	case st.done:
		if cause := context.Cause(st.ctx); cause != nil {
			return cause
		}
		return arbor.Errorf(arbor.Canceled, "the stream has ended")
	case st.ctx.Err() != nil:
		return ctxError(st.ctx)
	}
	return nil
}

func (st *gstream) sendErr(err error) error {
	return arbor.Errorf(arbor.Unavailable, "the gRPC connection failed: %v", err)
}

// waitLocked waits on the connection's cond, woken also by the end of
// st's context.
func (st *gstream) waitLocked() {
	c := st.c
	if st.stopWake == nil {
		st.stopWake = context.AfterFunc(st.ctx, func() {
			c.mu.Lock()
			c.cond.Broadcast()
			c.mu.Unlock()
		})
	}
	c.cond.Wait()
}

func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return arbor.Errorf(arbor.DeadlineExceeded, "the call's deadline passed")
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return arbor.Errorf(arbor.Canceled, "the call was cancelled")
}

// The arbor.Stream a streaming handler runs on.

func (st *gstream) Context() context.Context { return st.ctx }

// Send strips the msgpack bin the handler's Sender encoded.
func (st *gstream) Send(msg []byte) error {
	if st.m.kind == arbor.KindClientStream {
		return arbor.Errorf(arbor.FailedPrecondition, "this stream sends nothing to its caller")
	}
	b, err := unbin(msg)
	if err != nil {
		return arbor.Errorf(arbor.Internal, "a stream message is not a protobuf message: %v", err)
	}
	return st.sendMessage(b, false, nil)
}

// Recv returns the next message as the msgpack bin a Receiver decodes,
// giving its bytes back to the client's window.
func (st *gstream) Recv() ([]byte, error) {
	if st.ready == nil {
		return nil, io.EOF
	}
	for {
		st.qmu.Lock()
		if len(st.q) > 0 {
			m := st.q[0]
			st.q[0] = nil
			st.q = st.q[1:]
			inc := int64(0)
			if len(st.q) == 0 {
				st.q = nil
				if st.held > 0 {
					inc, st.held = st.held, 0
					st.recvWindow += inc
				}
			}
			st.qmu.Unlock()
			st.unreserve(reserved(m))
			if inc > 0 {
				st.c.writeWindowUpdate(st.id, inc)
			}
			return m, nil
		}
		if st.qerr != nil {
			err := st.qerr
			st.qmu.Unlock()
			return nil, err
		}
		if st.eof {
			st.qmu.Unlock()
			return nil, io.EOF
		}
		st.qmu.Unlock()
		select {
		case <-st.ready:
		case <-st.ctx.Done():
			return nil, ctxError(st.ctx)
		}
	}
}

func (st *gstream) CloseSend() error { return nil }

// clip shortens what a client sent for a message that goes back to it.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
