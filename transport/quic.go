package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// QUICALPN is the ALPN protocol that quic:// listeners and dialers offer
// and require: a peer that does not speak it fails the handshake.
const QUICALPN = "arbor/1"

const (
	// quicPreamble is the first byte of a control stream. The dialer
	// sends it so that the listener learns of the stream (QUIC announces
	// a stream only when data flows on it); the listener checks and strips
	// it. It doubles as a version number of this stream mapping.
	quicPreamble byte = 0x01

	// quicControlTimeout bounds how long an accepted connection may take
	// to open its control stream after the handshake.
	quicControlTimeout = 10 * time.Second

	quicMaxIdleTimeout     = 30 * time.Second
	quicMaxIncomingStreams = 10000

	// Application error codes sent in CONNECTION_CLOSE.
	quicCodeClosed   quic.ApplicationErrorCode = 0x0 // the connection was closed
	quicCodeProtocol quic.ApplicationErrorCode = 0x1 // bad or missing control stream

	// quicStreamCodeClosed cancels the unread or unwritten part of a
	// stream closed with Close.
	quicStreamCodeClosed quic.StreamErrorCode = 0x0
)

// quicConfig is the QUIC configuration of both sides. Keep-alives are off:
// Arbor's connection layer sends its own pings.
func quicConfig(allow0RTT bool) *quic.Config {
	return &quic.Config{
		MaxIdleTimeout:        quicMaxIdleTimeout,
		KeepAlivePeriod:       0,
		MaxIncomingStreams:    quicMaxIncomingStreams,
		MaxIncomingUniStreams: -1, // unidirectional streams are not used
		Allow0RTT:             allow0RTT,
	}
}

// quicAcceptor is what quicListener needs of quic-go's Listener and
// EarlyListener.
type quicAcceptor interface {
	Accept(context.Context) (*quic.Conn, error)
	Close() error
}

// withALPN sets tc's application protocols to QUICALPN alone, also on the
// configurations a GetConfigForClient callback returns.
func withALPN(tc *tls.Config) *tls.Config {
	tc.NextProtos = []string{QUICALPN}
	if get := tc.GetConfigForClient; get != nil {
		tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if c == nil || err != nil {
				return c, err
			}
			c = c.Clone()
			c.NextProtos = []string{QUICALPN}
			if c.MinVersion < tls.VersionTLS13 {
				c.MinVersion = tls.VersionTLS13
			}
			return c, nil
		}
	}
	return tc
}

// listenQUIC binds a UDP socket and serves QUIC on it. Each connection
// is handed to Accept once its control stream has arrived; waiting for
// that happens on a goroutine per connection, so a slow client does not
// hold up the others.
func listenQUIC(ctx context.Context, a Addr, cfg *Config) (Listener, error) {
	tc, err := serverTLSConfig(cfg, a.Scheme)
	if err != nil {
		return nil, err
	}
	tc = withALPN(tc)
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", a.Host)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: quicListenerConn(pc)}
	var ql quicAcceptor
	if cfg.Allow0RTT {
		// Connections come out before their handshake completes, so that
		// 0-RTT data can be read at once (see EarlyConn).
		ql, err = tr.ListenEarly(tc, quicConfig(true))
	} else {
		ql, err = tr.Listen(tc, quicConfig(false))
	}
	if err != nil {
		_ = tr.Close()
		_ = pc.Close()
		return nil, &net.OpError{Op: "listen", Net: SchemeQUIC, Addr: pc.LocalAddr(), Err: err}
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &quicListener{
		tr:         tr,
		pc:         pc,
		ql:         ql,
		url:        Addr{Scheme: SchemeQUIC, Host: pc.LocalAddr().String()}.String(),
		ctx:        lctx,
		cancel:     cancel,
		conns:      make(chan *quicConn),
		acceptDone: make(chan struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// quicListener is the Listener of a quic:// address.
//
// The UDP socket is shared by every connection the listener accepted, so
// Close stops accepting at once but releases the socket only when the last
// of those connections has closed too.
type quicListener struct {
	tr  *quic.Transport
	pc  net.PacketConn
	ql  quicAcceptor
	url string

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // acceptLoop and the per-connection goroutines

	conns      chan *quicConn // connections whose control stream is ready
	acceptDone chan struct{}  // closed when acceptLoop ends
	acceptErr  error          // why acceptLoop ended; read after acceptDone

	mu       sync.Mutex
	live     int  // connections accepted from quic-go and not yet closed
	closed   bool // Close was called
	released bool // the transport and socket are closed
}

// acceptLoop takes handshaken connections from quic-go and starts a
// goroutine for each that waits for its control stream.
func (l *quicListener) acceptLoop() {
	defer l.wg.Done()
	defer close(l.acceptDone)
	for {
		// Not l.ctx: after Close, Accept drains quic-go's queue of
		// handshaken connections (prepare then closes them) before it
		// fails with ErrServerClosed.
		qc, err := l.ql.Accept(context.Background())
		if err != nil {
			l.acceptErr = err
			return
		}
		l.mu.Lock()
		l.live++
		l.mu.Unlock()
		c := newQUICConn(qc, l.release)
		l.wg.Add(1)
		go l.prepare(c)
	}
}

// prepare waits for c's control stream and its preamble, then hands c to
// Accept. A connection that fails to, or that is still waiting when the
// listener closes, is closed.
func (l *quicListener) prepare(c *quicConn) {
	defer l.wg.Done()
	ctx, cancel := context.WithTimeout(l.ctx, quicControlTimeout)
	defer cancel()
	fail := func(msg string) {
		if l.ctx.Err() != nil {
			c.closeWith(quicCodeClosed, "listener closed")
		} else {
			c.closeWith(quicCodeProtocol, msg)
		}
	}
	if c.ConnectionState().NegotiatedProtocol != QUICALPN {
		// crypto/tls already refuses this for QUIC; kept for safety.
		fail("no ALPN")
		return
	}
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		fail("no control stream")
		return
	}
	stop := context.AfterFunc(ctx, func() { _ = s.SetReadDeadline(time.Now()) })
	var b [1]byte
	_, err = io.ReadFull(s, b[:])
	if !stop() || err != nil || b[0] != quicPreamble {
		fail("bad control stream preamble")
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	c.setControl(s)
	select {
	case l.conns <- c:
	case <-l.ctx.Done():
		_ = c.Close()
	}
}

// release is called once for every accepted connection when it closes.
func (l *quicListener) release() {
	l.mu.Lock()
	l.live--
	last := l.closed && l.live == 0 && !l.released
	if last {
		l.released = true
	}
	l.mu.Unlock()
	if last {
		l.closeTransport()
	}
}

func (l *quicListener) closeTransport() {
	_ = l.tr.Close()
	_ = l.pc.Close()
}

// Accept waits for the next connection whose control stream is ready. It
// returns a *quicConn, which implements StreamConn.
func (l *quicListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
	case <-l.acceptDone:
	}
	if l.ctx.Err() != nil {
		return nil, &net.OpError{Op: "accept", Net: SchemeQUIC, Addr: l.Addr(), Err: net.ErrClosed}
	}
	return nil, &net.OpError{Op: "accept", Net: SchemeQUIC, Addr: l.Addr(), Err: l.acceptErr}
}

// Close stops accepting: pending Accepts return an error, handshakes in
// progress are refused and connections not yet returned by Accept are
// closed. Connections that Accept returned stay open; the UDP socket is
// closed once the last of them is.
func (l *quicListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: SchemeQUIC, Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.closed = true
	l.mu.Unlock()

	l.cancel()
	err := l.ql.Close()
	l.wg.Wait() // every connection not handed out is closed (and released) now

	l.mu.Lock()
	last := l.live == 0 && !l.released
	if last {
		l.released = true
	}
	l.mu.Unlock()
	if last {
		l.closeTransport()
	}
	return err
}

// Addr returns the bound UDP address.
func (l *quicListener) Addr() net.Addr { return l.pc.LocalAddr() }

// URL returns "quic://" followed by the bound host:port.
func (l *quicListener) URL() string { return l.url }

// dialQUIC resolves the address, completes the QUIC handshake (TLS 1.3
// with ALPN QUICALPN) and opens the control stream. The connection owns
// its UDP socket, which is closed with it.
func dialQUIC(ctx context.Context, a Addr, cfg *Config) (net.Conn, error) {
	host, port, err := net.SplitHostPort(a.Host)
	if err != nil { // ParseAddr has checked it; kept for safety
		return nil, configError(err, "address %q", a.Host)
	}
	tc, err := clientTLSConfig(cfg, host)
	if err != nil {
		return nil, err
	}
	tc = withALPN(tc)
	if cfg.Allow0RTT && tc.ClientSessionCache == nil {
		tc.ClientSessionCache = cfg.SessionCache
	}
	opErr := func(err error) error {
		if isQUICTLSError(err) {
			return tlsError(err, "handshake with %s", a.Host)
		}
		return &net.OpError{Op: "dial", Net: SchemeQUIC, Addr: quicAddr(a.Host), Err: err}
	}
	raddr, err := resolveUDP(ctx, host, port)
	if err != nil {
		return nil, opErr(err)
	}
	network := "udp6"
	if raddr.Addr().Is4() {
		network = "udp4"
	}
	// A connected socket: the kernel then reports ICMP port-unreachable
	// as ECONNREFUSED, so a dial to a port where nothing listens fails at
	// once (quic-go gives up when its socket fails) instead of waiting
	// for a handshake timeout. After the handshake such reports are
	// ignored (connectedUDP).
	pc, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(raddr))
	if err != nil {
		return nil, opErr(err)
	}
	udp := connectedUDP{pc, pc.RemoteAddr().(*net.UDPAddr), new(atomic.Bool)}
	tr := &quic.Transport{Conn: udp}
	var once sync.Once
	release := func() {
		once.Do(func() {
			_ = tr.Close()
			_ = pc.Close()
		})
	}
	var qc *quic.Conn
	if cfg.Allow0RTT {
		// Returns before the handshake completes (at once when resuming
		// with 0-RTT): Write waits for it, WriteEarly does not.
		qc, err = tr.DialEarly(ctx, net.UDPAddrFromAddrPort(raddr), tc, quicConfig(false))
	} else {
		qc, err = tr.Dial(ctx, net.UDPAddrFromAddrPort(raddr), tc, quicConfig(false))
	}
	if err != nil {
		release()
		return nil, opErr(err)
	}
	// From the handshake on, the socket's refusals are ignored (see
	// connectedUDP); an early connection's handshake may still be under way.
	if !cfg.Allow0RTT {
		udp.live.Store(true)
	} else {
		go func() {
			select {
			case <-qc.HandshakeComplete():
				udp.live.Store(true)
			case <-qc.Context().Done():
			}
		}()
	}
	c := newQUICConn(qc, release)
	c.early = cfg.Allow0RTT
	if p := qc.ConnectionState().TLS.NegotiatedProtocol; p != QUICALPN && !c.early {
		// (Before an early connection's handshake completes the ALPN is
		// not known yet; crypto/tls enforces it.)
		// crypto/tls already refuses this for QUIC; kept for safety.
		c.closeWith(quicCodeProtocol, "no ALPN")
		return nil, tlsError(nil, "handshake with %s: negotiated ALPN %q, want %q", a.Host, p, QUICALPN)
	}
	s, err := qc.OpenStreamSync(ctx)
	if err == nil {
		_, err = s.Write([]byte{quicPreamble}) // safe in 0-RTT data: it does nothing
	}
	if err != nil { // such as the server refusing our certificate
		_ = c.Close()
		return nil, opErr(err)
	}
	c.setControl(s)
	return c, nil
}

// resolveUDP turns host and port into one address, honoring ctx. An empty
// host means the local system, as for net.Dial.
func resolveUDP(ctx context.Context, host, port string) (netip.AddrPort, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(p)), nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	for _, ip := range ips { // prefer IPv4, as localhost usually works there
		if ip.Unmap().Is4() {
			return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
		}
	}
	return netip.AddrPortFrom(ips[0], uint16(p)), nil // LookupNetIP returns at least one
}

// quicAddr is the net.Addr of an unresolved quic:// host:port.
type quicAddr string

func (a quicAddr) Network() string { return SchemeQUIC }
func (a quicAddr) String() string  { return string(a) }

// isQUICTLSError reports whether err is a TLS failure: a local TLS error
// or a TLS alert from the peer, which QUIC carries as a crypto error.
func isQUICTLSError(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.ErrorCode.IsCryptoError()
}

// quicConn is a QUIC connection seen as a net.Conn: Read, Write, deadlines
// and CloseWrite act on its control stream (the first bidirectional
// stream, opened by the dialer); OpenStream and AcceptStream give further
// streams. Close closes the whole QUIC connection.
type quicConn struct {
	*quicStream // the control stream, set before the conn is handed out

	qc          *quic.Conn
	early       bool        // dialed with Allow0RTT: Write waits for the handshake
	closed      atomic.Bool // Close was called
	release     func()      // frees what the connection holds; called once
	releaseOnce sync.Once
}

// quicMinWrite is MinWrite of a quic:// connection: quic-go copies a
// received STREAM frame shorter than 128 bytes (its
// protocol.MinStreamFrameBufferSize) into two fresh allocations, a longer
// one into a pooled packet buffer.
const quicMinWrite = 128

var (
	_ MinWriter  = (*quicConn)(nil)
	_ StreamConn = (*quicConn)(nil)
	_ net.Conn   = (*quicStream)(nil)
)

func newQUICConn(qc *quic.Conn, release func()) *quicConn {
	c := &quicConn{qc: qc, release: release}
	// Whoever closes the connection (us, the peer, an idle timeout),
	// release what it holds.
	context.AfterFunc(qc.Context(), c.releaseResources)
	return c
}

func (c *quicConn) setControl(s *quic.Stream) { c.quicStream = c.newStream(s) }

func (c *quicConn) newStream(s *quic.Stream) *quicStream {
	return &quicStream{s: s, conn: c}
}

func (c *quicConn) releaseResources() { c.releaseOnce.Do(c.release) }

// closeWith closes the connection with an application error code and
// waits until its resources are released.
func (c *quicConn) closeWith(code quic.ApplicationErrorCode, msg string) {
	c.closed.Store(true)
	_ = c.qc.CloseWithError(code, msg)
	c.releaseResources()
}

// Close closes the QUIC connection and with it every stream: local calls
// blocked on them return errors matching net.ErrClosed, and the peer's
// fail with an error carrying application code 0. Unlike TCP, data that
// the peer has not yet received may be lost; to end a conversation
// gracefully, CloseWrite and wait for the peer's EOF before closing.
func (c *quicConn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	_ = c.qc.CloseWithError(quicCodeClosed, "connection closed")
	c.releaseResources()
	return nil
}

// HandshakeComplete implements EarlyConn. On a connection of a listener
// or dialer without Allow0RTT it is closed already when the connection
// is handed out.
func (c *quicConn) HandshakeComplete() <-chan struct{} { return c.qc.HandshakeComplete() }

// Used0RTT implements EarlyConn: whether the server accepted 0-RTT data
// (meaningful once HandshakeComplete is closed).
func (c *quicConn) Used0RTT() bool { return c.qc.ConnectionState().Used0RTT }

// Write writes to the control stream. On a dialed connection with
// Allow0RTT it first waits for the handshake, so that b never goes in
// 0-RTT data (see WriteEarly).
func (c *quicConn) Write(b []byte) (int, error) {
	if c.early {
		select {
		case <-c.qc.HandshakeComplete():
		default:
			if err := c.waitHandshake(); err != nil {
				return 0, err
			}
		}
	}
	return c.quicStream.Write(b)
}

// waitHandshake waits until the handshake completes, the connection
// ends, or the control stream's write deadline passes.
func (c *quicConn) waitHandshake() error {
	var timeout <-chan time.Time
	if dl := c.writeDeadline(); !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c.qc.HandshakeComplete():
		return nil
	case <-c.qc.Context().Done():
		return c.opError("write", context.Cause(c.qc.Context()))
	case <-timeout:
		return c.opError("write", os.ErrDeadlineExceeded)
	}
}

// TryWrite implements TryWriter: it queues b on the control stream if it
// can go at once (quic-go's flow control has room for all of it), without
// waiting: else it queues nothing and returns 0 and a nil error, and the
// caller writes it later with Write, which waits. On a dialed connection with Allow0RTT whose
// handshake is not done, it queues nothing either (Write waits for the
// handshake). The connection layer writes its callers' frames with it, so
// that a caller never waits for a peer that stopped reading.
func (c *quicConn) TryWrite(b []byte) (int, bool, error) {
	if c.early {
		select {
		case <-c.qc.HandshakeComplete():
		default:
			return 0, false, nil
		}
	}
	n, err := c.quicStream.write(func() (int, error) {
		switch err := c.quicStream.s.TryWriteAll(b); {
		case err == nil:
			return len(b), nil
		case errors.Is(err, quic.ErrWouldBlock):
			return 0, nil
		default:
			return 0, err
		}
	})
	return n, false, err // quic-go holds all or nothing: never a part
}

// CutsWrites implements WriteCutter: quic-go's Write, stopped by the
// stream's write deadline, returns the bytes it queued and keeps none of
// the rest.
func (c *quicConn) CutsWrites() {}

// WriteEarly implements EarlyConn: it writes to the control stream without
// waiting for the handshake, so b may go in 0-RTT data.
func (c *quicConn) WriteEarly(b []byte) (int, error) { return c.quicStream.Write(b) }

// MinWrite implements MinWriter: writes on the control stream of at
// least this many bytes cost the receiver no allocation in quic-go.
func (c *quicConn) MinWrite() int { return quicMinWrite }

// LocalAddr returns the local UDP address.
func (c *quicConn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// RemoteAddr returns the peer's UDP address.
func (c *quicConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// ConnectionState returns the TLS state of the connection, as
// (*tls.Conn).ConnectionState does: the peer's certificates, the
// negotiated protocol (always QUICALPN).
func (c *quicConn) ConnectionState() tls.ConnectionState {
	return c.qc.ConnectionState().TLS
}

// Done is closed when the QUIC connection itself has closed (locally, by
// the peer, or by a timeout), as opposed to one of its streams.
func (c *quicConn) Done() <-chan struct{} { return c.qc.Context().Done() }

// OpenStream opens a new bidirectional stream, waiting while the peer's
// limit on concurrent streams is reached (until ctx ends). The peer's
// AcceptStream returns the stream only once data (or a CloseWrite) has
// been sent on it, so the opener should write first.
func (c *quicConn) OpenStream(ctx context.Context) (net.Conn, error) {
	if c.closed.Load() {
		return nil, c.opError("open", net.ErrClosed)
	}
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, c.opError("open", err)
	}
	return c.newStream(s), nil
}

// AcceptStream waits for the next stream the peer opened, or for ctx to
// end. The control stream is never returned.
func (c *quicConn) AcceptStream(ctx context.Context) (net.Conn, error) {
	if c.closed.Load() {
		return nil, c.opError("accept", net.ErrClosed)
	}
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, c.opError("accept", err)
	}
	return c.newStream(s), nil
}

// opError wraps err, an error from quic-go, for op. After Close the error
// is net.ErrClosed; TLS failures (such as a client certificate that the
// server refused) match ErrTLS; context errors and timeouts stay
// reachable.
func (c *quicConn) opError(op string, err error) error {
	switch {
	case c.closed.Load():
		err = net.ErrClosed
	case isQUICTLSError(err):
		err = tlsError(err, "quic connection")
	case errors.Is(err, quic.Err0RTTRejected):
		err = fmt.Errorf("%w (%w)", ErrEarlyRejected, err)
	}
	return &net.OpError{Op: op, Net: SchemeQUIC, Source: c.qc.LocalAddr(), Addr: c.qc.RemoteAddr(), Err: err}
}

// quicStream is one bidirectional QUIC stream as a net.Conn.
type quicStream struct {
	s    *quic.Stream
	conn *quicConn

	mu          sync.Mutex
	closed      bool // Close was called (on this stream)
	writeClosed bool // CloseWrite was called
	writers     int  // Writes in progress
	wdeadline   time.Time
}

func (s *quicStream) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *quicStream) opError(op string, err error) error {
	if s.isClosed() {
		err = net.ErrClosed
	}
	return s.conn.opError(op, err)
}

// Read reads from the stream. It returns io.EOF once the peer has called
// CloseWrite (or Close) on its side and all data has been read.
func (s *quicStream) Read(b []byte) (int, error) {
	if s.isClosed() || s.conn.closed.Load() {
		return 0, s.opError("read", net.ErrClosed)
	}
	n, err := s.s.Read(b)
	if err != nil && err != io.EOF {
		err = s.opError("read", err)
	}
	return n, err
}

// Write writes to the stream.
func (s *quicStream) Write(b []byte) (int, error) {
	return s.write(func() (int, error) { return s.s.Write(b) })
}

// write runs w, a write to the stream, counted in writers (see Close).
func (s *quicStream) write(w func() (int, error)) (int, error) {
	s.mu.Lock()
	if s.closed || s.conn.closed.Load() {
		s.mu.Unlock()
		return 0, s.opError("write", net.ErrClosed)
	}
	s.writers++
	s.mu.Unlock()
	n, err := w()
	s.mu.Lock()
	s.writers--
	s.mu.Unlock()
	if err != nil {
		err = s.opError("write", err)
	}
	return n, err
}

// CloseWrite ends the sending side of the stream: the peer reads io.EOF
// after the data written so far. Reading is unaffected.
func (s *quicStream) CloseWrite() error {
	s.mu.Lock()
	if s.closed || s.conn.closed.Load() {
		s.mu.Unlock()
		return s.opError("close", net.ErrClosed)
	}
	done := s.writeClosed
	s.writeClosed = true
	s.mu.Unlock()
	if done {
		return nil
	}
	if err := s.s.Close(); err != nil {
		return s.conn.opError("close", err)
	}
	return nil
}

// Close closes both directions of the stream (not the connection, except
// for the control stream, whose Close is the connection's). Data written
// so far is still delivered, followed by EOF, unless a Write is in
// progress, which is aborted (the peer's Read fails). Reading is canceled:
// the peer's further Writes fail. Blocked local Reads and Writes return
// errors matching net.ErrClosed.
func (s *quicStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.conn.opError("close", net.ErrClosed)
	}
	s.closed = true
	writing := s.writers > 0
	writeClosed := s.writeClosed
	s.mu.Unlock()
	switch {
	case writing:
		s.s.CancelWrite(quicStreamCodeClosed)
	case !writeClosed:
		_ = s.s.Close()
	}
	s.s.CancelRead(quicStreamCodeClosed)
	return nil
}

// LocalAddr returns the connection's local UDP address.
func (s *quicStream) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the peer's UDP address.
func (s *quicStream) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (s *quicStream) SetDeadline(t time.Time) error {
	s.setWriteDeadline(t)
	return s.s.SetDeadline(t)
}

// SetReadDeadline sets the deadline for Reads.
func (s *quicStream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for Writes.
func (s *quicStream) SetWriteDeadline(t time.Time) error {
	s.setWriteDeadline(t)
	return s.s.SetWriteDeadline(t)
}

func (s *quicStream) setWriteDeadline(t time.Time) {
	s.mu.Lock()
	s.wdeadline = t
	s.mu.Unlock()
}

func (s *quicStream) writeDeadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wdeadline
}
