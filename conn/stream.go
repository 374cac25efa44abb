package conn

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// Stream is one streaming call: both sides send messages (DATA frames)
// until they half-close (END); the callee ends the stream with a result or
// an error. Sending is flow-controlled by credit: a sender may have at most
// the receiver's window of unread bytes outstanding per stream and per
// connection (plus one message), so a slow reader blocks the sender and
// memory stays bounded.
type Stream struct {
	c      *Conn
	id     uint64
	opener bool            // this side opened it
	ctx    context.Context // the opener's context, or the handler's
	stop   func() bool     // stops the opener's cancel watch

	mu       sync.Mutex
	msgs     [][]byte
	head     int
	buffered int  // bytes received, not yet read
	consumed int  // bytes read since the last CREDIT
	recvEnd  bool // no more messages will arrive
	ended    bool // finish ran (guards stop)
	credited bool // finish returned the queue's connection credit
	recvSig  chan struct{}

	sendCredit int64 // guarded by c.fmu
	sendClosed bool

	doneOnce   sync.Once
	done       chan struct{}
	hooks      []func(error)        // OnDone's, run by finish (under mu until ended)
	err        error                // why the stream ended, when not a plain success
	result     []byte               // the callee's RESULT payload (opener side)
	resultCaps []wire.CapDescriptor // its capability table
	trailer    []wire.MD            // the callee's trailers (opener side)
	unserved   func()               // Outgoing.Unserved (opener side), kept should the stream be cancelled

	// Config.Observer's state (opener side) and the message bytes it
	// counts (observe.go).
	ob                   *observed
	sentBytes, recvBytes atomic.Int64
}

// Trailer returns the callee's trailers once the stream has ended.
func (s *Stream) Trailer() []wire.MD {
	<-s.done
	return s.trailer
}

// newStream makes a stream; its id is set when it is registered.
func newStream(c *Conn, opener bool, ctx context.Context) *Stream {
	return &Stream{c: c, opener: opener, ctx: ctx, recvSig: make(chan struct{}, 1),
		done: make(chan struct{}), sendCredit: int64(c.peerStreamWindow)}
}

// Conn is the connection the stream runs on.
func (s *Stream) Conn() *Conn { return s.c }

// ID is the stream's call id.
func (s *Stream) ID() uint64 { return s.id }

// Context is the stream's context: the caller's on the opening side, the
// handler's on the serving side.
func (s *Stream) Context() context.Context { return s.ctx }

func (s *Stream) signal() {
	select {
	case s.recvSig <- struct{}{}:
	default:
	}
}

// finish ends the stream once; later calls are ignored.
func (s *Stream) finish(result []byte, err error) {
	s.doneOnce.Do(func() {
		s.mu.Lock()
		s.result, s.err = result, err
		s.recvEnd = true
		s.ended = true
		stop, hooks := s.stop, s.hooks
		s.hooks = nil
		// Messages still queued give their connection credit back now:
		// nobody may read them. They stay readable, uncounted.
		unread := 0
		if !s.credited {
			unread, s.credited = s.buffered, true
		}
		s.mu.Unlock()
		if unread > 0 {
			s.c.consumed(unread)
		}
		close(s.done)
		s.signal()
		if stop != nil {
			stop()
		}
		if s.ob != nil {
			s.observeEnd(result, err)
		}
		if s.opener { // a served stream is counted with its call
			s.c.inflight.Add(-1)
		}
		s.c.wakeCredit()
		for _, fn := range hooks {
			fn(err)
		}
	})
}

// OnDone arranges for fn to run once, with the error that ended the
// stream (nil: it ended well), when the stream is over: at once if it
// is already. fn runs on the goroutine that ended the stream (often the
// connection's reader), so it must be quick and must never block.
func (s *Stream) OnDone(fn func(err error)) {
	s.mu.Lock()
	if !s.ended {
		s.hooks = append(s.hooks, fn)
		s.mu.Unlock()
		return
	}
	err := s.err
	s.mu.Unlock()
	fn(err)
}

// OpenStream starts a streaming call. Cancelling ctx cancels the stream on
// both sides.
func (c *Conn) OpenStream(ctx context.Context, o *Outgoing) (*Stream, error) {
	if o.Retain {
		return nil, status.New(status.InvalidArgument, "conn: a stream cannot retain its answer")
	}
	// Streams never go early (earlyOK): the send credit they start with
	// is the peer's window, known from its HELLO.
	if err := c.waitHello(ctx); err != nil {
		return nil, err
	}
	s := newStream(c, true, ctx)
	if c.cfg.Observer != nil {
		s.ob = new(observed)
		oc := *o
		c.startOutgoing(ctx, s.ob, CallStream, &oc)
		o = &oc
	}
	c.inflight.Add(1) // finish takes it back
	if _, err := c.start(ctx, o, nil, s, false); err != nil {
		c.inflight.Add(-1)
		if s.ob != nil {
			s.ob.end(c.cfg.Observer, 0, err)
			s.ob = nil
		}
		return nil, err
	}
	s.watch()
	return s, nil
}

// watch cancels the stream when its context ends. Set after the stream is
// registered (abort looks it up); a stream that ended meanwhile stops the
// watch at once.
func (s *Stream) watch() {
	stop := context.AfterFunc(s.ctx, func() { s.abort(s.ctx.Err()) })
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		stop()
		return
	}
	s.stop = stop
	s.mu.Unlock()
}

// abort ends an opened stream from this side: CANCEL to the peer, the
// context's error locally.
func (s *Stream) abort(cause error) {
	s.c.cmu.Lock()
	_, mine := s.c.ostreams[s.id]
	delete(s.c.ostreams, s.id)
	if mine {
		s.c.abandonLocked(s.id, s.unserved)
	}
	s.c.cmu.Unlock()
	if mine {
		s.c.sendCancel(s.id, cause)
		s.finish(nil, status.FromError(cause))
	}
}

// Send sends one message, waiting for flow-control credit. After the
// stream has ended it returns io.EOF (the opener learns why from Recv or
// Result).
func (s *Stream) Send(msg []byte) error {
	s.mu.Lock()
	closed := s.sendClosed
	s.mu.Unlock()
	if closed {
		return status.Wrap(status.FailedPrecondition, status.ErrStream, nil, "send on a stream after CloseSend")
	}
	if s.isDone() {
		if s.err != nil && s.opener {
			return s.err
		}
		return io.EOF
	}
	if len(msg) > int(s.c.peerMaxFrame) {
		return status.Errorf(status.ResourceExhausted, "stream message of %d bytes is over the peer's frame limit of %d", len(msg), s.c.peerMaxFrame)
	}
	if err := s.c.waitCredit(s, msgCost(len(msg))); err != nil {
		return err
	}
	if err := s.lockForAppend(); err != nil {
		return err
	}
	s.c.wbuf = wire.AppendFrame(s.c.wbuf, wire.TypeData, 0, s.id, msg)
	s.c.flushLazyLocked()
	s.countSent(len(msg))
	return nil
}

// CloseSend half-closes this side: the peer's Recv returns io.EOF once it
// has read every message sent before.
func (s *Stream) CloseSend() error {
	s.mu.Lock()
	if s.sendClosed {
		s.mu.Unlock()
		return nil
	}
	s.sendClosed = true
	s.mu.Unlock()
	select {
	case <-s.done:
		return nil
	default:
	}
	if s.lockForAppend() != nil {
		return nil // the connection or the stream's context ended: Recv says why
	}
	s.c.wbuf = wire.AppendHeader(s.c.wbuf, wire.Header{Type: wire.TypeEnd, ID: s.id})
	s.c.flushLocked()
	return nil
}

// lockForAppend takes the connection's write lock for one of this
// stream's frames, waiting for room in its queue no longer than the
// stream's context lasts: an opener whose context ended gets the error
// that ended the stream (its abort is under way).
func (s *Stream) lockForAppend() error {
	err := s.c.lockForAppendCtx(s.ctx)
	if err != nil && s.opener && s.ctx.Err() != nil {
		<-s.done
		if s.err != nil {
			return s.err
		}
	}
	return err
}

// Recv returns the next message. It returns io.EOF when the peer has
// half-closed (or, on the opening side, ended the stream successfully)
// and every message has been read, or the error that ended the stream.
func (s *Stream) Recv() ([]byte, error) {
	for {
		s.mu.Lock()
		if s.head < len(s.msgs) {
			m := s.msgs[s.head]
			s.msgs[s.head] = nil
			s.head++
			if s.head == len(s.msgs) {
				s.msgs, s.head = s.msgs[:0], 0
			}
			s.buffered -= msgCost(len(m))
			s.consumed += msgCost(len(m))
			var credit int
			if s.consumed >= int(s.c.streamWindow/4) {
				credit, s.consumed = s.consumed, 0
			}
			ended := s.isDone()
			credited := s.credited
			s.mu.Unlock()
			if !credited {
				s.c.consumed(msgCost(len(m)))
			}
			if credit > 0 && !ended {
				s.c.sendCredit(s.id, uint32(credit))
			}
			s.countRecv(len(m))
			return m, nil
		}
		if s.recvEnd {
			err := s.err
			s.mu.Unlock()
			if err == nil {
				return nil, io.EOF
			}
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.recvSig:
		case <-s.done:
		case <-s.ctx.Done():
			if !s.opener {
				return nil, status.FromError(s.ctx.Err())
			}
			<-s.done // abort finishes it
		}
	}
}

func (s *Stream) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Result waits for the callee to end the stream and returns its result
// payload or error. Opening side only.
func (s *Stream) Result() ([]byte, error) {
	<-s.done
	return s.result, s.err
}

// ResultCaps is the capability table of the result; valid after Result.
func (s *Stream) ResultCaps() []wire.CapDescriptor {
	<-s.done
	return s.resultCaps
}

// Done is closed when the stream has ended.
func (s *Stream) Done() <-chan struct{} { return s.done }

// deliver queues a DATA payload (reader goroutine).
func (s *Stream) deliver(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recvEnd {
		if s.ended {
			s.dropped(msgCost(len(p))) // the stream ended locally; late data is dropped
			return nil
		}
		return fmt.Errorf("DATA on stream %d after END", s.id)
	}
	if s.buffered+msgCost(len(p)) > int(s.c.streamWindow)+msgCost(int(s.c.cfg.MaxFrame)) {
		return fmt.Errorf("flow control: stream %d sent %d bytes beyond its window of %d", s.id, s.buffered+msgCost(len(p)), s.c.streamWindow)
	}
	s.msgs = append(s.msgs, append([]byte(nil), p...))
	s.buffered += msgCost(len(p))
	s.signal()
	return nil
}

// msgCost is what a stream message of n bytes counts against the
// flow-control windows, on both sides: its frame, header included, so
// that empty and tiny messages, which each cost a queue entry, are
// bounded as well.
func msgCost(n int) int { return n + wire.HeaderSize }

// dropped returns the connection credit of a message that will never be
// read.
func (s *Stream) dropped(n int) { s.c.consumed(n) }

func (s *Stream) peerEnd() {
	s.mu.Lock()
	s.recvEnd = true
	s.mu.Unlock()
	s.signal()
}

// ---- connection-level flow control ----

// waitCredit takes n bytes of send credit for s, waiting while the stream
// or the connection has none left. Credit may go negative by one message,
// so a message larger than the window still goes through.
func (c *Conn) waitCredit(s *Stream, n int) error {
	var stalled time.Time // set once this send has had to wait
	for {
		c.fmu.Lock()
		if s.sendCredit > 0 && c.connCredit > 0 {
			s.sendCredit -= int64(n)
			c.connCredit -= int64(n)
			c.fmu.Unlock()
			if !stalled.IsZero() && c.cfg.Observer != nil {
				c.cfg.Observer.FlowStalled(c, time.Since(stalled))
			}
			return nil
		}
		if stalled.IsZero() {
			stalled = time.Now()
		}
		ch := c.creditCh
		c.fmu.Unlock()
		select {
		case <-ch:
		case <-s.done:
			if s.err != nil && !s.opener {
				return s.err
			}
			return io.EOF
		case <-s.ctx.Done():
			if s.opener {
				<-s.done
				return s.err
			}
			return status.FromError(s.ctx.Err())
		case <-c.closed:
			return c.closeErr
		}
	}
}

func (c *Conn) wakeCredit() {
	c.fmu.Lock()
	close(c.creditCh)
	c.creditCh = make(chan struct{})
	c.fmu.Unlock()
}

// grant applies a CREDIT frame from the peer.
func (c *Conn) grant(id uint64, n uint32) {
	c.fmu.Lock()
	if id == 0 {
		c.connCredit += int64(n)
	} else if s := c.streamByID(id); s != nil {
		s.sendCredit += int64(n)
	}
	close(c.creditCh)
	c.creditCh = make(chan struct{})
	c.fmu.Unlock()
}

// consumed records n stream bytes read by the application and returns
// connection credit to the peer in batches.
func (c *Conn) consumed(n int) {
	c.fmu.Lock()
	c.recvBuffered -= n
	c.recvConsumed += n
	var credit int
	if c.recvConsumed >= int(c.connWindow/4) {
		credit, c.recvConsumed = c.recvConsumed, 0
	}
	c.fmu.Unlock()
	if credit > 0 {
		c.sendCredit(0, uint32(credit))
	}
}

func (c *Conn) sendCredit(id uint64, n uint32) {
	c.wmu.Lock()
	if c.werr != nil {
		c.wmu.Unlock()
		return
	}
	c.wbuf = wire.AppendCredit(c.wbuf, id, n)
	c.flushLocked()
}

// streamByID finds a live stream in either direction.
func (c *Conn) streamByID(id uint64) *Stream {
	if id%2 == c.myParity() {
		c.cmu.Lock()
		s := c.ostreams[id]
		c.cmu.Unlock()
		return s
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	if sc := c.serving.get(id); sc != nil {
		return sc.in.Stream
	}
	return nil
}

// streamFrame handles DATA, END and CREDIT (reader goroutine).
func (c *Conn) streamFrame(h wire.Header, p []byte) error {
	if h.Type == wire.TypeCredit {
		n, err := wire.ParseCredit(p)
		if err != nil {
			return err
		}
		c.grant(h.ID, n)
		return nil
	}
	s := c.streamByID(h.ID)
	if s == nil {
		if c.neverSeen(h.ID) {
			return fmt.Errorf("%s for stream %d, which was never opened", h.Type, h.ID)
		}
		if h.Type == wire.TypeData { // ended meanwhile: the sender's credit comes back
			c.fmu.Lock()
			c.recvBuffered += msgCost(len(p))
			c.fmu.Unlock()
			c.consumed(msgCost(len(p)))
		}
		return nil
	}
	if h.Type == wire.TypeEnd {
		if len(p) != 0 {
			return fmt.Errorf("END frame with a %d-byte payload", len(p))
		}
		s.peerEnd()
		return nil
	}
	c.fmu.Lock()
	c.recvBuffered += msgCost(len(p))
	over := c.recvBuffered > int(c.connWindow)+msgCost(int(c.cfg.MaxFrame))
	c.fmu.Unlock()
	if over {
		return fmt.Errorf("flow control: connection window of %d bytes exceeded", c.connWindow)
	}
	return s.deliver(p)
}

// neverSeen reports an id the peer cannot legitimately use yet.
func (c *Conn) neverSeen(id uint64) bool {
	if id%2 == c.myParity() {
		return id >= c.nextIDSnapshot()
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	return id > c.lastIn
}

// Cancel ends a stream this side opened, early: the peer's handler sees
// its context cancelled and later operations here fail with Canceled.
func (s *Stream) Cancel() {
	if s.opener {
		s.abort(context.Canceled)
	}
}
