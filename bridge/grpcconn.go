package bridge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/arbor-rpc/arbor"
)

// One connection of the native gRPC server: its reader (this file, one
// goroutine reading frames and dispatching them), its writer's state
// (grpcwrite.go) and its streams (grpcstream.go).

// gconn is one HTTP/2 connection. mu guards the write queue, the flow
// control windows and the stream table; the reader alone touches fr, br
// and the reader-side fields of the streams.
type gconn struct {
	s      *GRPCServer
	h      *Handler
	cfg    *GRPCConfig
	nc     net.Conn
	peer   arbor.Peer
	ctx    context.Context // ends with the connection: the calls' parent
	cancel context.CancelCauseFunc

	br *bufio.Reader
	fr *http2.Framer // reads only

	mu      sync.Mutex
	cond    *sync.Cond // writes drained, windows grown, streams ended
	streams map[uint32]*gstream
	maxID   uint32         // the highest client stream id seen
	hwg     sync.WaitGroup // the handlers
	wwg     sync.WaitGroup // the writer goroutine
	started bool           // our SETTINGS are queued: GOAWAY may follow

	goingAway  bool // GOAWAY sent: no new streams
	closeAfter bool // close the connection once the queue is written
	closed     bool

	// The writer (grpcwrite.go).
	wbuf, wspare []byte
	wfr          *http2.Framer // writes control frames into wbuf
	writing      bool
	werr         error
	wsig         chan struct{}
	enc          *hpack.Encoder
	hbuf         bytes.Buffer // the encoder's output
	sendWindow   int64        // the connection's, for our DATA
	peerWindow   int32        // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame    int          // the peer's SETTINGS_MAX_FRAME_SIZE
	encPending   bool         // the encoder owes the peer a table size update
	wtimeout     time.Duration

	// Inbound connection window (reader only).
	recvWindow  int64
	recvUnacked int64
}

// appendTo is the write framer's io.Writer: frames land in the queue.
type appendTo struct{ c *gconn }

func (a appendTo) Write(p []byte) (int, error) {
	a.c.wbuf = append(a.c.wbuf, p...)
	return len(p), nil
}

func newGConn(s *GRPCServer, nc net.Conn) *gconn {
	c := &gconn{s: s, h: s.h, cfg: &s.cfg, nc: nc, streams: map[uint32]*gstream{},
		sendWindow: 65535, peerWindow: 65535, peerFrame: 16384, wsig: make(chan struct{}, 1),
		recvWindow: int64(s.cfg.ConnWindow), wtimeout: s.cfg.WriteTimeout}
	c.cond = sync.NewCond(&c.mu)
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.wfr = http2.NewFramer(appendTo{c}, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	return c
}

// connErr is a connection error: GOAWAY with code, then close.
type connErr struct {
	code http2.ErrCode
	msg  string
}

func (e connErr) Error() string { return e.code.String() + ": " + e.msg }

func protoErr(format string, args ...any) error {
	return connErr{http2.ErrCodeProtocol, fmt.Sprintf(format, args...)}
}

// serve runs the connection until it ends, then waits for its calls.
func (c *gconn) serve() {
	err := c.run()
	var ce connErr
	if errors.As(err, &ce) {
		c.cfg.Logger.Debug("gRPC connection error", "peer", c.nc.RemoteAddr().String(), "err", err)
		c.goAwayErr(ce)
	}
	if err == nil {
		err = io.EOF
	}
	c.closeNow(err)
	c.wwg.Wait()
	c.hwg.Wait()
	c.stopStreams()
}

// run does the handshakes, then reads frames until the connection fails.
func (c *gconn) run() error {
	c.nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if tc, ok := c.nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(c.ctx); err != nil {
			return err
		}
		st := tc.ConnectionState()
		if st.NegotiatedProtocol != "h2" {
			return fmt.Errorf("TLS client negotiated %q, not h2 (ALPN)", st.NegotiatedProtocol)
		}
		c.peer.TLS = &st
	}
	c.peer.Addr = c.nc.RemoteAddr()
	c.nc.SetWriteDeadline(time.Time{})
	c.wwg.Add(1)
	go c.writer()

	// Our settings leave at once (the server's preface), then the
	// connection window grows past the protocol's 64 KiB.
	c.mu.Lock()
	c.wfr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.cfg.MaxConcurrentStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: c.cfg.StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: c.cfg.MaxHeaderListBytes},
	)
	if inc := c.cfg.ConnWindow - 65535; inc > 0 {
		c.wfr.WriteWindowUpdate(0, inc)
	}
	c.started = true
	c.flushLocked(false)

	c.br = bufio.NewReaderSize(c.nc, 16<<10)
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return fmt.Errorf("reading the client preface: %w", err)
	}
	if string(preface[:]) != http2.ClientPreface {
		return protoErr("the connection does not start with the HTTP/2 client preface (prior knowledge)")
	}
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(16384) // we advertise no larger frames
	dec := hpack.NewDecoder(4096, nil)
	// The framer bounds each string by the list's limit (a longer one is
	// a COMPRESSION_ERROR) and truncates longer lists (refused below).
	c.fr.ReadMetaHeaders = dec
	c.fr.MaxHeaderListSize = c.cfg.MaxHeaderListBytes

	f, err := c.fr.ReadFrame()
	if err != nil {
		return c.readErr(err)
	}
	if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
		return protoErr("the client's first frame is %v, not SETTINGS", f.Header().Type)
	}
	c.nc.SetReadDeadline(time.Time{})
	for {
		if err := c.handle(f); err != nil {
			return err
		}
		// A stream error (a malformed header block) ends its stream only.
		for f, err = c.fr.ReadFrame(); err != nil; f, err = c.fr.ReadFrame() {
			var se http2.StreamError
			if !errors.As(err, &se) {
				return c.readErr(err)
			}
			c.streamErrRead(se)
		}
	}
}

// readErr maps the framer's errors to connection errors.
func (c *gconn) readErr(err error) error {
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		msg := "malformed frame"
		if d := c.fr.ErrorDetail(); d != nil {
			msg = d.Error()
		}
		return connErr{http2.ErrCode(ce), msg}
	case errors.Is(err, http2.ErrFrameTooLarge):
		return connErr{http2.ErrCodeFrameSize, "a frame over the 16384 bytes of SETTINGS_MAX_FRAME_SIZE"}
	}
	return err
}

// streamErrRead is a malformed request header block: its stream ends.
func (c *gconn) streamErrRead(se http2.StreamError) {
	c.mu.Lock()
	if se.StreamID%2 == 1 && se.StreamID > c.maxID {
		c.maxID = se.StreamID
	}
	st := c.streams[se.StreamID]
	c.mu.Unlock()
	if st != nil {
		st.resetByPeer(fmt.Errorf("stream error %v", se.Code))
	}
	c.writeRST(se.StreamID, se.Code)
}

// handle dispatches one frame.
func (c *gconn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		return c.onRST(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			if err := c.lockForAppend(); err != nil {
				return err
			}
			c.wfr.WritePing(true, f.Data)
			c.flushLocked(true)
		}
	case *http2.GoAwayFrame:
		// The client opens no more streams; those running finish.
	case *http2.PushPromiseFrame:
		return protoErr("a client sent PUSH_PROMISE")
	}
	// PRIORITY, PRIORITY_UPDATE and unknown frame types are ignored.
	return nil
}

func (c *gconn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return connErr{http2.ErrCode(ce), "invalid SETTINGS"}
		}
		return protoErr("invalid SETTINGS")
	}
	if err := c.lockForAppend(); err != nil {
		return err
	}
	defer c.flushLocked(true)
	var ferr error
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(c.peerWindow)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > 1<<31-1 {
					ferr = connErr{http2.ErrCodeFlowControl, "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream's window"}
				}
			}
			c.peerWindow = int32(s.Val)
			c.cond.Broadcast()
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			if s.Val < c.enc.MaxDynamicTableSize() {
				c.encPending = true // the next block opens with the update
			}
			c.enc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if ferr != nil {
		return ferr
	}
	c.wfr.WriteSettingsAck()
	return nil
}

func (c *gconn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWindow += inc
		if c.sendWindow > 1<<31-1 {
			return connErr{http2.ErrCodeFlowControl, "WINDOW_UPDATE overflows the connection's window"}
		}
		c.cond.Broadcast()
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.maxID {
			return protoErr("WINDOW_UPDATE on idle stream %d", f.StreamID)
		}
		return nil // a stream that ended
	}
	st.sendWindow += inc
	if st.sendWindow > 1<<31-1 {
		c.mu.Unlock()
		st.resetByPeer(errors.New("its window overflowed"))
		c.writeRST(f.StreamID, http2.ErrCodeFlowControl)
		c.mu.Lock()
		return nil
	}
	c.cond.Broadcast()
	return nil
}

func (c *gconn) onRST(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	st := c.streams[f.StreamID]
	idle := f.StreamID > c.maxID
	c.mu.Unlock()
	if st == nil {
		if idle {
			return protoErr("RST_STREAM on idle stream %d", f.StreamID)
		}
		return nil
	}
	st.resetByPeer(fmt.Errorf("the client reset the stream (%v)", f.ErrCode))
	return nil
}

// onData takes a DATA frame: the connection's window first (counted even
// for streams that ended), then the stream's.
func (c *gconn) onData(f *http2.DataFrame) error {
	n := int64(f.Header().Length)
	if n > c.recvWindow {
		return connErr{http2.ErrCodeFlowControl, fmt.Sprintf("DATA of %d bytes over the connection's window of %d", n, c.recvWindow)}
	}
	c.recvWindow -= n
	c.recvUnacked += n
	if c.recvUnacked >= int64(c.cfg.ConnWindow/4) {
		if err := c.lockForAppend(); err != nil {
			return err
		}
		c.wfr.WriteWindowUpdate(0, uint32(c.recvUnacked))
		c.flushLocked(true)
		c.recvWindow += c.recvUnacked
		c.recvUnacked = 0
	}
	c.mu.Lock()
	st := c.streams[f.StreamID]
	idle := f.StreamID > c.maxID
	verdict := frameDrop
	if st != nil {
		verdict = st.acceptLocked(f.StreamEnded())
	}
	c.mu.Unlock()
	if st == nil {
		if idle {
			return protoErr("DATA on idle stream %d", f.StreamID)
		}
		return nil // a stream that ended: its data is dropped
	}
	return st.onData(verdict, f.Data(), n, f.StreamEnded())
}

// onHeaders opens a stream, or half-closes one (a client's trailers).
func (c *gconn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return protoErr("HEADERS on even stream %d", id)
	}
	c.mu.Lock()
	if st := c.streams[id]; st != nil {
		if !f.StreamEnded() {
			c.mu.Unlock()
			return protoErr("trailers without END_STREAM on stream %d", id)
		}
		verdict := st.acceptLocked(true)
		c.mu.Unlock()
		return st.onData(verdict, nil, 0, true)
	}
	if id <= c.maxID {
		c.mu.Unlock()
		if f.StreamEnded() {
			return nil // a client's trailers racing our end of its stream
		}
		return connErr{http2.ErrCodeStreamClosed, fmt.Sprintf("HEADERS on closed stream %d", id)}
	}
	c.maxID = id
	if c.goingAway || len(c.streams) >= int(c.cfg.MaxConcurrentStreams) {
		c.mu.Unlock()
		c.writeRST(id, http2.ErrCodeRefusedStream)
		return nil
	}
	c.mu.Unlock()
	return c.open(f)
}

// writeRST queues RST_STREAM.
func (c *gconn) writeRST(id uint32, code http2.ErrCode) {
	if c.lockForAppend() != nil {
		return
	}
	c.wfr.WriteRSTStream(id, code)
	c.flushLocked(true)
}

// goAway begins a graceful shutdown: GOAWAY naming the last stream this
// connection took; it closes once the streams are done.
func (c *gconn) goAway() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	if !c.started { // still in its handshake: nothing to drain
		c.mu.Unlock()
		c.closeNow(errServerClosed)
		return
	}
	c.goingAway = true
	c.wfr.WriteGoAway(c.maxID, http2.ErrCodeNo, nil)
	if len(c.streams) == 0 {
		c.closeAfter = true
	}
	c.flushLocked(false)
}

// goAwayErr sends GOAWAY with a connection error's code, briefly.
func (c *gconn) goAwayErr(e connErr) {
	c.mu.Lock()
	if c.closed || c.werr != nil || !c.started {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.wfr.WriteGoAway(c.maxID, e.code, []byte(e.msg))
	c.wtimeout = time.Second // a peer that reads nothing
	c.closeAfter = true
	if c.writing {
		for c.writing {
			c.cond.Wait()
		}
		if c.werr == nil && len(c.wbuf) > 0 {
			c.writeLocked()
			return
		}
		c.mu.Unlock()
		return
	}
	c.writeLocked()
}

// closeNow closes the connection and cancels its calls.
func (c *gconn) closeNow(cause error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.werr == nil {
		c.werr = cause
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	// The calls' cause is never the reader's bare io.EOF: a stream's Recv
	// would return it as the client's end of its messages.
	c.cancel(arbor.Errorf(arbor.Canceled, "the gRPC connection closed: %v", cause))
	c.nc.Close()
}

// stopStreams ends what the closed connection left: the streams whose
// handlers never started (a unary call whose request had not ended),
// giving back what they hold of MaxMemory. Reader only (its loop is over).
func (c *gconn) stopStreams() {
	c.mu.Lock()
	left := make([]*gstream, 0, len(c.streams))
	for _, st := range c.streams {
		left = append(left, st)
	}
	clear(c.streams)
	c.mu.Unlock()
	for _, st := range left {
		st.stop(context.Cause(c.ctx))
	}
}
