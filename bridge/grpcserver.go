package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The native gRPC server: application/grpc (protobuf binary) over HTTP/2,
// spoken directly on the connection with x/net/http2's Framer and HPACK,
// without net/http or connect-go. It serves the same functions as the
// Handler's connect-go path, through the same Server.Invoke and
// InvokeStream; gRPC-Web, Connect and HTTP/1.1 stay on NewHTTPServer.
// This file holds the server (listeners, connections, shutdown); the
// connection's reader is grpcconn.go, its writer grpcwrite.go, a call
// grpcstream.go, the protocol's encodings grpcproto.go.

// Defaults of GRPCConfig.
const (
	// DefaultGRPCMaxConcurrentStreams is the streams one connection may
	// have open.
	DefaultGRPCMaxConcurrentStreams = 100
	// DefaultGRPCMaxHeaderListBytes bounds a request's headers.
	DefaultGRPCMaxHeaderListBytes = 64 << 10
	// DefaultGRPCStreamWindow is a stream's receive window.
	DefaultGRPCStreamWindow = 256 << 10
	// DefaultGRPCConnWindow is a connection's receive window.
	DefaultGRPCConnWindow = 1 << 20
	// DefaultGRPCMaxPendingWrite bounds a connection's write queue.
	DefaultGRPCMaxPendingWrite = 1 << 20
	// DefaultGRPCMaxMemory bounds the request bytes all connections hold.
	DefaultGRPCMaxMemory = 256 << 20
	// DefaultGRPCMaxConnections bounds the connections served at once.
	DefaultGRPCMaxConnections = 10000
)

// GRPCConfig configures a GRPCServer. The zero value is usable; the
// message size limit is the Handler's Config.MaxMessageBytes.
//
// A connection holds at most about MaxConcurrentStreams × (2 ×
// MaxMessageBytes + 8 × StreamWindow) of requests (a message being read,
// one waiting for its handler, and the window's worth of small ones) and
// MaxPendingWrite of responses, whatever its client does; all connections
// together hold at most MaxMemory of requests (a stream whose message
// would take more is refused with RESOURCE_EXHAUSTED), and at most
// MaxConnections connections are served.
type GRPCConfig struct {
	// TLS, if set, makes Serve speak TLS on its plain listeners (ALPN
	// "h2" is added). Without it a listener's *tls.Conn connections are
	// still served over TLS, and plain ones as h2c with prior knowledge.
	TLS *tls.Config
	// MaxConcurrentStreams is advertised and enforced per connection:
	// streams beyond it are refused with RST_STREAM REFUSED_STREAM
	// (default DefaultGRPCMaxConcurrentStreams).
	MaxConcurrentStreams uint32
	// MaxHeaderListBytes bounds a request's decoded header list (default
	// DefaultGRPCMaxHeaderListBytes).
	MaxHeaderListBytes uint32
	// StreamWindow is the flow-control window a stream's caller may fill
	// before the handler takes its messages (default
	// DefaultGRPCStreamWindow); ConnWindow the connection's (default
	// DefaultGRPCConnWindow). Either is at least 65,535 bytes.
	StreamWindow, ConnWindow uint32
	// MaxPendingWrite bounds the bytes queued for one connection's
	// socket: beyond it senders (handlers and the reader's replies to
	// PING and SETTINGS) wait (default DefaultGRPCMaxPendingWrite).
	MaxPendingWrite int
	// HandshakeTimeout bounds the TLS handshake and the client's
	// connection preface (default 10s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one write to the socket: a client that stops
	// reading for longer loses its connection (default 30s).
	WriteTimeout time.Duration
	// MaxMemory bounds the bytes of request messages all connections
	// hold at once, being read or waiting for their handlers (default
	// DefaultGRPCMaxMemory): a stream whose message would go over it is
	// refused with RESOURCE_EXHAUSTED, so no number of clients sending
	// large messages at once exhausts the process.
	MaxMemory int64
	// MaxConnections bounds the connections served at once (default
	// DefaultGRPCMaxConnections); one more is closed as soon as accepted.
	MaxConnections int
	// Logger receives protocol errors at debug level (default: none).
	Logger *slog.Logger
}

func (c *GRPCConfig) fill() {
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultGRPCMaxConcurrentStreams
	}
	if c.MaxHeaderListBytes == 0 {
		c.MaxHeaderListBytes = DefaultGRPCMaxHeaderListBytes
	}
	// A window asked for below HTTP/2's initial 65,535 bytes gets that:
	// the connection's cannot start lower.
	if c.StreamWindow == 0 {
		c.StreamWindow = DefaultGRPCStreamWindow
	}
	if c.ConnWindow == 0 {
		c.ConnWindow = DefaultGRPCConnWindow
	}
	c.StreamWindow = max(c.StreamWindow, 65535)
	c.ConnWindow = max(c.ConnWindow, 65535)
	c.StreamWindow = min(c.StreamWindow, 1<<31-1)
	c.ConnWindow = min(c.ConnWindow, 1<<31-1)
	if c.MaxPendingWrite <= 0 {
		c.MaxPendingWrite = DefaultGRPCMaxPendingWrite
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = readHeaderTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultGRPCMaxMemory
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultGRPCMaxConnections
	}
}

// ErrGRPCServerClosed is what Serve returns after Shutdown or Close.
var ErrGRPCServerClosed = errors.New("bridge: gRPC server closed")

// GRPCServer serves a Handler's generated functions to gRPC clients
// (application/grpc, protobuf binary) over HTTP/2 on its own transport:
// h2c with prior knowledge on plain connections, HTTP/2 over TLS with
// ALPN "h2". It does not speak gRPC-Web, Connect, JSON, HTTP/1.1 or
// compressed messages (use NewHTTPServer for those), nor server
// reflection.
type GRPCServer struct {
	h   *Handler
	cfg GRPCConfig

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*gconn]struct{}
	closed    bool
	draining  bool
	wg        sync.WaitGroup // connection goroutines
	idle      chan struct{}  // closed when the last connection ends while draining

	held atomic.Int64 // request bytes held by every stream (MaxMemory)
}

// take reserves n bytes of MaxMemory, or reports false when they are not
// there.
func (s *GRPCServer) take(n int64) bool {
	for {
		cur := s.held.Load()
		if cur+n > s.cfg.MaxMemory {
			return false
		}
		if s.held.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// MemoryInUse is the request bytes the server's streams hold now.
func (s *GRPCServer) MemoryInUse() int64 { return s.held.Load() }

// NewGRPCServer returns a native gRPC server for h's generated functions.
func NewGRPCServer(h *Handler, cfg GRPCConfig) *GRPCServer {
	cfg.fill()
	return &GRPCServer{h: h, cfg: cfg, listeners: map[net.Listener]struct{}{}, conns: map[*gconn]struct{}{}}
}

// Serve accepts connections on l and serves them until Shutdown or
// Close, when it returns ErrGRPCServerClosed; other accept errors end it
// too (temporary ones are retried after a pause).
func (s *GRPCServer) Serve(l net.Listener) error {
	if s.cfg.TLS != nil {
		tc := s.cfg.TLS.Clone()
		tc.NextProtos = []string{"h2"}
		l = tls.NewListener(l, tc)
	}
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		l.Close()
		return ErrGRPCServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var pause time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.closed || s.draining
			s.mu.Unlock()
			if done {
				return ErrGRPCServerClosed
			}
			var ne net.Error
			if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of descriptors (a client opening many connections)
				// or one reset in the queue: wait and go on serving.
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				time.Sleep(pause)
				continue
			}
			return err
		}
		pause = 0
		c := newGConn(s, nc)
		s.mu.Lock()
		if s.closed || s.draining {
			s.mu.Unlock()
			nc.Close()
			return ErrGRPCServerClosed
		}
		if len(s.conns) >= s.cfg.MaxConnections {
			s.mu.Unlock()
			s.cfg.Logger.Debug("bridge: gRPC connection refused: MaxConnections reached", "remote", nc.RemoteAddr().String(), "limit", s.cfg.MaxConnections)
			c.cancel(nil)
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			if s.draining && len(s.conns) == 0 && s.idle != nil {
				close(s.idle)
				s.idle = nil
			}
			s.mu.Unlock()
		}()
	}
}

// Shutdown stops accepting, sends every connection GOAWAY and waits for
// the calls in flight to finish and the connections to close, or for ctx
// to end (then it closes what is left, as Close, and returns ctx's
// error).
func (s *GRPCServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for l := range s.listeners {
		l.Close()
	}
	idle := s.idle // a Shutdown already waiting: wait with it
	if idle == nil {
		idle = make(chan struct{})
		if len(s.conns) == 0 {
			close(idle)
		} else {
			s.idle = idle
		}
	}
	conns := make([]*gconn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	select {
	case <-idle:
		s.wg.Wait()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once, cancelling
// the calls in flight, and waits for the connections' goroutines.
func (s *GRPCServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.closeNow(errServerClosed)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

var errServerClosed = errors.New("the server closed the connection")
