// Package conn is one live Arbor connection: a reader loop, a coalescing
// writer, an in-flight table of outgoing calls, and dispatch of incoming
// calls to a Handler. Both ends are symmetric: either may call the other.
//
// Writes are combined: a goroutine that queues a frame while no write is in
// progress performs the write itself, taking every frame queued meanwhile
// along in the same syscall. Under load, writes are left to a writer
// goroutine that starts on demand and exits when idle. Incoming calls run
// on a pool of worker goroutines that outlive single calls, or, for
// functions whose calls have proven quick, on the reader itself, their
// answers leaving together once the reader has read all it has (inline.go).
// An idle connection holds one goroutine (the reader), a small read buffer
// and small write buffers (see writer.go and wire.Reader).
//
// It is not a client or a server (the root package builds those on it), and
// it does not dial or listen (package transport does).
package conn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// Conn is one connection. Its methods are safe for concurrent use.
type Conn struct {
	nc     net.Conn
	cfg    Config
	client bool

	// Agreed at handshake.
	peerMaxFrame      uint32
	peerMaxConcurrent uint32
	keepAlive         time.Duration

	// Writing (see write.go).
	wmu     sync.Mutex
	wcond   sync.Cond
	wbuf    []byte
	wspare  []byte
	writing bool
	// Large payloads queued by reference (see queueRef): wsegs[i] goes
	// out after wbuf[:wsegs[i].at]. wgen numbers the batches the writer
	// takes (it takes wbuf and wsegs together); wflight is the batch being
	// written, 0 when none.
	wsegs     []wseg
	wsegBytes int
	wsegSpare []wseg
	wvec      net.Buffers // the writer's, while writing
	wgen      uint64
	wflight   uint64
	// wcharged is the memory budget that the results queued in wbuf hold,
	// given back once they are written.
	wcharged int
	// cutWrites: a write on nc may be cut short by a write deadline and
	// resumed (a plain socket, QUIC: transport.WriteCutter; not TLS,
	// whose state a timed-out write corrupts, though its Cutter ends the
	// chunk in flight at once). vecWrites: large payloads go in one
	// writev (a plain socket); elsewhere in chunks, a cut also stopping
	// between two (writeVec). wcut says releaseRef asked the write in
	// progress to stop (see cutLocked); wcutSig is its copy for the
	// writer between chunks, which holds no lock.
	cutWrites bool
	vecWrites bool
	try       transport.TryWriter // for callers' own writes (flushLocked); nil: they may wait
	wcut      bool
	wcutSig   atomic.Bool
	// wdeadline is the write deadline of a closing connection's last
	// writes (zero until then): a cut gives it back.
	wdeadline time.Time
	werr      error
	wsig      chan struct{} // wakes writeLoop
	wloop     bool          // writeLoop is running (started on demand, see writer.go)
	// minWrite pads shorter writes with a PAD frame: the transport pays
	// extra for them (transport.MinWriter).
	minWrite int
	// 0-RTT (transport.EarlyConn): early is closed when the handshake
	// completes (nil when it had when the connection started); ec is set
	// on a client that may send before it (its HELLO and idempotent calls,
	// see Outgoing.Idempotent); wsafe is how many bytes at the start of
	// wbuf may go early.
	early <-chan struct{}
	ec    transport.EarlyConn
	wsafe int
	// helloCh, on a client started early, is closed once the peer's HELLO
	// has been read (the peer's limits are known); until then only early
	// calls go, within the limits every peer accepts.
	helloCh chan struct{}
	// inflight counts calls in flight both ways; under load, writes are
	// left to writeLoop so that they coalesce.
	inflight atomic.Int64

	// Outgoing calls and streams.
	cmu       sync.Mutex
	calls     idTable[call]
	ostreams  map[uint64]*Stream
	nextID    uint64
	goingAway bool   // the peer sent GOAWAY, or Retire
	peerAway  bool   // the peer sent GOAWAY
	awayLast  uint64 // the peer's GOAWAY LastID
	awayMsg   string
	// abandoned holds, by id, the Outgoing.Unserved of calls and streams
	// this side cancelled before their answer: the peer's GOAWAY may yet
	// show they were never served. An answer for the id, a GOAWAY or the
	// close forgets them, and so does the bound maxAbandoned.
	abandoned map[uint64]func()

	rd *wire.Reader // the reader loop's (large payloads are taken from it)
	// granted is the size of the CALL payload arriving with its budget
	// reserved (grantFrame); the reading goroutine's.
	granted int
	// readBuf is the size of the reader's buffer (small while the
	// connection is quiet, see wire.Reader), as the reader last saw it.
	readBuf atomic.Int32
	// mdc parses incoming calls' metadata: a call carrying what the one
	// before it carried (a trace context, a token) shares its parse.
	mdc wire.MetadataCache
	// arrived is when the reader's last read returned (the reader's own,
	// kept with an Observer only): reads counts them, and an observed
	// call's start is its frame's arrival.
	arrived time.Time
	reads   uint64

	// Inline calls (inline.go). rpend and rcount are the reader's own:
	// answers of inline calls wait in wbuf for the reader to write them;
	// inline calls run. rstate is the reader's generation times two, plus
	// one while it runs a call inline, inlineSeq numbers inline calls; the
	// watchdog (wd, armed when wdArmed) starts a new reader when the
	// inline call it saw last (wdSeq) is still running.
	rpend     bool
	rcount    uint32
	rstate    atomic.Uint64
	inlineSeq atomic.Uint64
	wdSeq     atomic.Uint64
	wd        atomic.Pointer[time.Timer]
	wdArmed   atomic.Bool

	ka atomic.Pointer[kaTimer] // the keep-alive, once started

	// Incoming calls.
	smu            sync.Mutex
	serving        idTable[serverCall]
	active         atomic.Uint32        // calls counted against MaxConcurrent (added to under smu)
	answers        map[uint64]*answer   // retained answers (promise pipelining)
	retainedBytes  int                  // their results' total size (and their targets' paths)
	retainClosed   bool                 // retainedBytes given back to Config.RetainBudget at close
	tickets        map[targetKey]uint64 // per capability target: calls arrived
	dropped        []uint64             // targeted answers dropped, to tell the handler (smu)
	servingStreams uint32
	lastIn         uint64 // highest incoming call id seen
	draining       bool   // we sent GOAWAY
	drained        chan struct{}
	work           chan *serverCall
	workers        int

	// Stream flow control (see stream.go).
	streamWindow     uint32 // what we accept per stream
	connWindow       uint32 // what we accept per connection
	peerStreamWindow uint32 // initial send credit of each stream
	fmu              sync.Mutex
	creditCh         chan struct{} // closed and replaced when credit arrives
	connCredit       int64
	recvBuffered     int
	recvConsumed     int

	// mem is what incoming calls hold of the memory budgets.
	mem memAccount

	attachMu sync.Mutex
	attach   any
	detached bool // closed: no attachment any more

	pingSeq    atomic.Uint64 // the latest ping this side sent (Heartbeat)
	pingAt     atomic.Int64  // when, in Unix nanoseconds
	recvFlag   atomic.Bool   // a frame arrived since the last keep-alive tick
	readPaused atomic.Bool   // the reader waits for budget: the peer is not silent
	unusable   atomic.Bool   // closed or the peer sent GOAWAY: start no new calls

	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
	loops     sync.WaitGroup
}

// Client starts the client end of a connection over nc: it performs the
// HELLO exchange and starts the reader. Client calls use odd ids.
func Client(nc net.Conn, cfg Config) (*Conn, error) { return start(nc, cfg, true) }

// Server starts the server end of a connection over nc. Server-initiated
// calls (callbacks) use even ids.
func Server(nc net.Conn, cfg Config) (*Conn, error) { return start(nc, cfg, false) }

func start(nc net.Conn, cfg Config, client bool) (*Conn, error) {
	c := &Conn{
		nc:       nc,
		cfg:      cfg.withDefaults(),
		client:   client,
		ostreams: make(map[uint64]*Stream),
		creditCh: make(chan struct{}),
		answers:  make(map[uint64]*answer),
		tickets:  make(map[targetKey]uint64),
		work:     make(chan *serverCall),
		wsig:     make(chan struct{}, 1),
		wgen:     1,
		closed:   make(chan struct{}),
	}
	c.wcond.L = &c.wmu
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		c.cutWrites, c.vecWrites = true, true
	case transport.WriteCutter: // QUIC
		c.cutWrites = true
	}
	c.try = transport.NewTryWriter(nc)
	if mw, ok := nc.(transport.MinWriter); ok {
		c.minWrite = mw.MinWrite()
	}
	if ec, ok := nc.(transport.EarlyConn); ok {
		select {
		case <-ec.HandshakeComplete():
		default:
			c.early = ec.HandshakeComplete()
			if client {
				c.ec = ec
			}
		}
	}
	c.mem = memAccount{own: NewBudget(c.cfg.MaxMemory), shared: c.cfg.Budget}
	if client {
		c.nextID = 1
	} else {
		c.nextID = 2
	}
	if c.ec != nil {
		return c.startEarly()
	}
	r, err := c.handshake()
	if err != nil {
		nc.Close()
		return nil, err
	}
	if obs := c.cfg.Observer; obs != nil { // before the loops, so before ConnClosed
		obs.ConnOpened(c)
	}
	// The reader and the keep-alive, counted before either runs: one may
	// close the connection, and OnClose then waits. The writer goroutine
	// starts when a write is left to it (writer.go).
	c.loops.Add(2)
	go c.readLoop(r)
	if c.keepAlive > 0 {
		c.startKeepAlive()
	} else {
		c.loops.Done()
	}
	return c, nil
}

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr is this end's address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// NetConn is the underlying transport connection (to read TLS state).
func (c *Conn) NetConn() net.Conn { return c.nc }

// KeepAlive is the agreed keep-alive interval (0 when off). On a client
// started in 0-RTT it waits for the peer's HELLO.
func (c *Conn) KeepAlive() time.Duration {
	if c.waitHello(context.Background()) != nil {
		return 0
	}
	return c.keepAlive
}

// PeerMaxFrame is the largest payload the peer accepts. On a client
// started in 0-RTT it waits for the peer's HELLO (0 if the connection
// fails first).
func (c *Conn) PeerMaxFrame() uint32 {
	if c.waitHello(context.Background()) != nil {
		return 0
	}
	return c.peerMaxFrame
}

// Done is closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.closed }

// Err is why the connection closed, or nil while it is open.
func (c *Conn) Err() error {
	select {
	case <-c.closed:
		return c.closeErr
	default:
		return nil
	}
}

// Usable reports whether new calls may be started: the connection is open
// and the peer has not announced GOAWAY.
func (c *Conn) Usable() bool { return !c.unusable.Load() }

// Attachment returns the value attached to the connection, creating it
// with mk on first use. Layers above keep per-connection state here (the
// root package's capability table) so it lives and dies with the
// connection: once the connection is closed it is nil, and an attachment
// with a ConnClosed() method is told so (in a goroutine of its own).
func (c *Conn) Attachment(mk func() any) any {
	c.attachMu.Lock()
	defer c.attachMu.Unlock()
	if c.attach == nil && mk != nil && !c.detached {
		c.attach = mk()
	}
	return c.attach
}

// Retire stops new calls on this connection without closing it: calls in
// flight finish. Clients use it when the peer refuses a call because it is
// going away, before the GOAWAY itself has arrived.
func (c *Conn) Retire() {
	c.cmu.Lock()
	c.goingAway = true
	c.unusable.Store(true)
	c.cmu.Unlock()
}

// Close closes the connection at once: pending outgoing calls fail with
// Unavailable, running handlers see their contexts cancelled. It waits for
// the connection's own goroutines (not for handlers) to stop.
func (c *Conn) Close() error {
	c.closeWith(status.Wrap(status.Unavailable, status.ErrConnection, nil, "connection closed"))
	c.loops.Wait()
	return nil
}

// closeWith closes the connection with err as the reason. It never blocks
// on the connection's goroutines, so they may call it.
func (c *Conn) closeWith(err *status.Error) {
	c.closeOnce.Do(func() {
		if ka := c.ka.Load(); ka != nil {
			ka.stop(c)
		}
		if f := c.cfg.OnClose; f != nil {
			go func() {
				c.loops.Wait()
				f(c)
			}()
		}
		c.closeErr = err
		c.unusable.Store(true)
		close(c.closed)
		c.mem.closeAccount()
		c.attachMu.Lock()
		old := c.attach
		c.attach = nil // per-connection state of upper layers (exports) dies here
		c.detached = true
		c.attachMu.Unlock()
		if h, ok := old.(interface{ ConnClosed() }); ok {
			go h.ConnClosed()
		}
		if qc, ok := c.try.(transport.QuickCloser); ok {
			qc.Closing() // TLS: its close_notify must not wait behind held bytes
		}
		c.nc.Close()

		c.cmu.Lock()
		calls, streams := c.calls.takeAll(), c.ostreams
		c.ostreams = make(map[uint64]*Stream)
		c.abandoned = nil
		c.cmu.Unlock()
		for _, cl := range calls {
			cl.complete(err)
		}
		for _, s := range streams {
			s.finish(nil, err)
		}

		c.smu.Lock()
		c.serving.each(func(sc *serverCall) { sc.ctx.cancel(context.Canceled) })
		c.smu.Unlock()

		c.wmu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.wcond.Broadcast()
		c.wmu.Unlock()
		if obs := c.cfg.Observer; obs != nil {
			obs.ConnClosed(c, err)
		}
	})
}

// protocolError logs a malformed frame from the peer, tells the peer why
// (best effort), and closes the connection.
func (c *Conn) protocolError(err error) {
	c.cfg.Logger.Warn("arbor: protocol error, closing connection", "remote", c.nc.RemoteAddr().String(), "err", err)
	c.sendGoAway(uint32(status.InvalidArgument), "protocol error: "+err.Error())
	c.lastWrites(time.Second) // the peer may not be reading
	c.flushNow()
	c.closeWriteAndWait(100 * time.Millisecond)
	c.closeWith(status.Wrap(status.Unavailable, status.ErrProtocol, err, "connection closed: protocol error"))
}

// lastWrites bounds the writes of a closing connection to d from now.
func (c *Conn) lastWrites(d time.Duration) {
	c.wmu.Lock()
	c.wdeadline = time.Now().Add(d)
	_ = c.nc.SetWriteDeadline(c.wdeadline)
	c.wmu.Unlock()
}

// closeWriteAndWait half-closes the transport after the last frames and
// waits up to d for the peer to close its side: closing at once can make
// the transport drop what is still unsent (QUIC discards stream data on
// close; TCP may reset when unread data is pending).
func (c *Conn) closeWriteAndWait(d time.Duration) {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closed:
	}
}

func (c *Conn) lostConnection(err error) *status.Error {
	c.cmu.Lock()
	msg := c.awayMsg
	c.cmu.Unlock()
	if msg != "" {
		return status.Wrap(status.Unavailable, status.ErrConnection, err, "connection closed by peer ("+msg+")")
	}
	if errors.Is(err, net.ErrClosed) {
		return status.Wrap(status.Unavailable, status.ErrConnection, err, "connection closed")
	}
	return status.Wrap(status.Unavailable, status.ErrConnection, err, fmt.Sprintf("connection to %s lost", c.nc.RemoteAddr()))
}
