package arbor

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/transport"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("arbor: server closed")

// CatalogFunction is the id of the built-in function that lists a server's
// catalog ([]FunctionInfo).
const CatalogFunction = "arbor.catalog"

// Server serves registered functions on any number of listeners.
type Server struct {
	opts     options
	handlers atomic.Pointer[map[string]*handler]
	regMu    sync.Mutex
	chain    UnaryFunc // nil without interceptors

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	setup     map[net.Conn]struct{} // accepted, still in the TLS or HELLO handshake
	conns     map[*conn.Conn]struct{}
	closed    bool
	drainCtx  context.Context // set by Shutdown, nil after Close
	wg        sync.WaitGroup
}

// NewServer returns a server with no functions but the built-in catalog.
func NewServer(opts ...Option) *Server {
	s := &Server{
		opts:      buildOptions(opts),
		listeners: make(map[net.Listener]struct{}),
		setup:     make(map[net.Conn]struct{}),
		conns:     make(map[*conn.Conn]struct{}),
	}
	s.handlers.Store(&map[string]*handler{})
	if len(s.opts.interceptors) > 0 {
		s.chain = chain(s.opts.interceptors, s.final)
	}
	Handle0(s, CatalogFunction, func(ctx context.Context) ([]FunctionInfo, error) { return s.Catalog(), nil })
	return s
}

// register adds h; an id may be registered once.
func (s *Server) register(h *handler) error {
	if h.info.ID == "" {
		return status.New(InvalidArgument, "function id is empty")
	}
	if h.info.ID[0] == '@' {
		return status.Errorf(InvalidArgument, "function id %q: ids starting with @ name capabilities", h.info.ID)
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	old := *s.handlers.Load()
	if _, dup := old[h.info.ID]; dup {
		return status.Errorf(AlreadyExists, "function %q is already registered", h.info.ID)
	}
	m := make(map[string]*handler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[h.info.ID] = h
	s.handlers.Store(&m) // copy on write: lookups take no lock
	return nil
}

// Catalog lists the registered functions, sorted by id. Built-in functions
// (ids starting with "arbor.") are left out.
func (s *Server) Catalog() []FunctionInfo {
	m := *s.handlers.Load()
	out := make([]FunctionInfo, 0, len(m))
	for id, h := range m {
		if !strings.HasPrefix(id, "arbor.") { // built-ins are not the user's catalog
			out = append(out, h.info)
		}
	}
	sortInfos(out)
	return out
}

func (s *Server) lookup(fn []byte) (*handler, error) {
	if h := (*s.handlers.Load())[string(fn)]; h != nil {
		return h, nil
	}
	return nil, &Error{Code: NotFound, Category: status.ErrUnknownMethod, Message: "unknown function " + quote(fn)}
}

// ServeCall implements conn.Handler.
func (s *Server) ServeCall(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	if len(in.Function) > 1 && in.Function[0] == '@' { // a method of an exported service
		return serveCapabilityCall(ctx, in, out)
	}
	if in.Pipelined { // arguments that are promises: wait for their answers
		args, err := substitutePromises(ctx, in)
		if err != nil {
			return nil, err
		}
		in.Args, in.Pipelined = args, false
	}
	if in.Stream != nil {
		h, err := s.lookup(in.Function)
		if err != nil {
			return nil, err
		}
		return s.serveStream(ctx, h, in, out)
	}
	if s.chain == nil {
		h, err := s.lookup(in.Function)
		if err != nil {
			return nil, err
		}
		if h.invoke == nil {
			return nil, status.Errorf(InvalidArgument, "%s is a %s function; open a stream to call it", h.info.ID, h.info.Kind)
		}
		return h.invoke(ctx, in.Args, out)
	}
	req := &Request{Function: string(in.Function), Metadata: Metadata(in.Metadata), Args: in.Args}
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	resp, err := s.chain(ctx, req)
	if err != nil {
		return nil, err
	}
	return append(out, resp.Result...), nil
}

// final is the end of the server's interceptor chain.
func (s *Server) final(ctx context.Context, req *Request) (*Response, error) {
	h, err := s.lookup([]byte(req.Function))
	if err != nil {
		return nil, err
	}
	if h.invoke == nil {
		return nil, status.Errorf(InvalidArgument, "%s is a %s function; open a stream to call it", h.info.ID, h.info.Kind)
	}
	res, err := h.invoke(ctx, req.Args, nil)
	if err != nil {
		return nil, err
	}
	return &Response{Result: res}, nil
}

// ListenAndServe listens on addr (tcp://, tls://, unix:, mem:) with the
// server's transport configuration and serves it.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	l, err := transport.Listen(ctx, addr, s.opts.transport)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close, then returns
// ErrServerClosed. Each connection is set up in its own goroutine, so a
// slow or hostile client cannot hold up others.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.listeners, l)
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.opts.logger.Warn("arbor: accept error, retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				s.mu.Lock()
				if s.closed { // closed while we slept: nobody else will close l
					s.mu.Unlock()
					l.Close()
					return ErrServerClosed
				}
				s.listeners[l] = struct{}{}
				s.mu.Unlock()
				continue
			}
			l.Close()
			return err
		}
		backoff = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.setup[nc] = struct{}{} // so that Close need not wait for its handshake
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

func (s *Server) serveConn(nc net.Conn) {
	defer s.wg.Done()
	cfg := s.opts.conn
	cfg.Handler = s
	peer := &Peer{Addr: nc.RemoteAddr()}
	if tc, ok := nc.(*tls.Conn); ok {
		timeout := cfg.HandshakeTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			s.opts.logger.Info("arbor: TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
			s.setupDone(nc)
			nc.Close()
			return
		}
	}
	if cs, ok := nc.(connectionStater); ok { // tls:// and quic://
		st := cs.ConnectionState()
		peer.TLS = &st
	}
	cfg.BaseContext = context.WithValue(context.Background(), peerKey{}, peer)
	c, err := conn.Server(nc, cfg)
	if err != nil {
		s.setupDone(nc)
		s.opts.logger.Info("arbor: connection set-up failed", "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	// conn.Server has started serving calls: register and check for
	// Shutdown/Close atomically, so that every connection is either in the
	// list stop returns or drained (or closed) here.
	s.mu.Lock()
	delete(s.setup, nc)
	s.conns[c] = struct{}{}
	closed, drain := s.closed, s.drainCtx
	s.mu.Unlock()
	if closed {
		if drain != nil {
			c.Drain(drain, "server shutting down")
		} else {
			c.Close()
		}
	}
	<-c.Done()
	c.Close() // wait for its goroutines
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) closeSetup() {
	s.mu.Lock()
	s.closeSetupLocked()
	s.mu.Unlock()
}

func (s *Server) closeSetupLocked() {
	for nc := range s.setup {
		nc.Close() // fails its handshake at once
	}
}

func (s *Server) setupDone(nc net.Conn) {
	s.mu.Lock()
	delete(s.setup, nc)
	s.mu.Unlock()
}

// Shutdown stops accepting connections, sends GOAWAY on every connection,
// lets running calls finish (new calls are refused with Unavailable), then
// closes. Connections still in their handshake are drained in turn once
// set up (or dropped when their handshake times out). If ctx ends first,
// the remaining connections are closed at once and ctx's error is
// returned.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.Drain(ctx, "server shutting down")
		}()
	}
	wg.Wait()
	close(errs)
	all := make(chan struct{})
	go func() { s.wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-ctx.Done():
		s.closeSetup()
		<-all
		return ctx.Err()
	}
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Close closes all listeners and connections at once; running handlers see
// their contexts cancelled.
func (s *Server) Close() error {
	for _, c := range s.stop(nil) {
		c.Close()
	}
	s.wg.Wait()
	return nil
}

// stop marks the server closed, closes its listeners and returns the
// established connections. drain is Shutdown's context, nil for Close,
// which also closes the connections still being set up.
func (s *Server) stop(drain context.Context) []*conn.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if drain == nil || !s.closed || s.drainCtx != nil { // Close wins over Shutdown
		s.drainCtx = drain
	}
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	if drain == nil {
		s.closeSetupLocked()
	}
	conns := make([]*conn.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}
