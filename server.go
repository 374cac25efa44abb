package arbor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("arbor: server closed")

// CatalogFunction is the id of the built-in function that lists a
// server's catalog ([]FunctionInfo).
const CatalogFunction = "arbor.catalog"

// Server serves registered functions on any number of listeners. Its
// registry is the catalog: every function registered with HandleN,
// HandleRaw or a stream handler, described by FunctionInfo, listed by
// Catalog (and remotely by the built-in arbor.catalog), and run through
// the server's interceptors however it is reached (a call, a method of a
// Service, a request tree). Close or Shutdown it when done.
type Server struct {
	cfg      serverConfig
	logger   *slog.Logger
	handlers atomic.Pointer[map[string]*handler]
	regMu    sync.Mutex
	serve    *dispatcher
	budget   *conn.Budget
	retained *conn.Budget // the retained answers of all connections
	maxConns int          // MaxConnections, within the descriptor limit
	// invoke runs a function in process through the interceptors.
	invokeChain CallFunc
	onConn      func(*conn.Conn) // tests: each connection once it serves

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	setup     map[net.Conn]struct{} // accepted, still in the TLS or HELLO handshake
	conns     map[*conn.Conn]struct{}
	urls      []string
	closed    bool
	done      chan struct{}   // closed when closed is set
	drainCtx  context.Context // set by Shutdown, nil after Close
	draining  atomic.Bool
	wg        sync.WaitGroup

	// Rate-limits the log of failed handshakes and of connections (a
	// flood of bad clients must not flood the log).
	failLog    logLimiter
	connLogger *slog.Logger
}

func init() {
	builtin.Register = func(srv any, id string, args []string, result string, fn builtin.RawFunc) error {
		s, ok := srv.(*Server)
		if !ok {
			return fmt.Errorf("builtin.Register: %T is not an *arbor.Server", srv)
		}
		return handleRaw(s, FunctionInfo{ID: id, Args: args, Result: result}, fn, nil, true)
	}
	builtin.Registrar = func(srv any) any { return builtinRegistrar{srv.(*Server)} }
	builtin.DrainBegun = func(srv any) <-chan struct{} { return srv.(*Server).done }
	builtin.Invoke = func(srv any, ctx context.Context, id string, args []byte) ([]byte, error) {
		res, err := srv.(*Server).Invoke(ctx, id, args)
		return res, toStatus(err)
	}
}

// NewServer returns a server with no functions but the built-in catalog.
func NewServer(opts ...ServerOption) *Server {
	s := &Server{
		listeners: make(map[net.Listener]struct{}),
		setup:     make(map[net.Conn]struct{}),
		conns:     make(map[*conn.Conn]struct{}),
		done:      make(chan struct{}),
	}
	s.cfg.cfg = DefaultConfig()
	for _, o := range opts {
		o.applyServer(&s.cfg)
	}
	s.logger = s.cfg.logger()
	// Connections log through a rate limit: their events come from peers.
	s.connLogger = slog.New(limitedHandler{s.logger.Handler(), &s.failLog})
	mem := s.cfg.cfg.MaxMemory
	if mem <= 0 {
		mem = DefaultMaxMemory
	}
	s.budget = conn.NewBudget(mem)
	s.retained = conn.NewBudget(mem)
	// Never accept more connections than the descriptors allow: refusing
	// one cleanly needs a descriptor, running out fails everything.
	s.maxConns = s.cfg.cfg.MaxConnections
	if n := fdLimit(); n > 0 {
		reserve := min(64, n/4) // listeners, files, the refusals themselves
		if s.maxConns <= 0 || s.maxConns > n-reserve {
			s.maxConns = n - reserve
		}
	}
	s.handlers.Store(&map[string]*handler{})
	ics := s.cfg.interceptors
	if s.cfg.auth != nil { // authentication runs before anything the user added
		ics = append([]Interceptor{bearerAuth(s.cfg.auth)}, ics...)
	}
	s.serve = &dispatcher{functions: s.lookupBytes, noInline: s.cfg.noInline}
	if len(ics) > 0 {
		s.serve.chain = chain(ics, finalServe)
	}
	s.invokeChain = chain(ics, finalServe)
	Handle0(builtinRegistrar{s}, CatalogFunction, func(ctx context.Context) ([]FunctionInfo, error) { return s.Catalog(), nil })
	s.registerBootstrap()
	return s
}

// builtinRegistrar registers built-in functions, whose ids are reserved.
type builtinRegistrar struct{ s *Server }

func (b builtinRegistrar) register(h *handler, _ bool) error { return b.s.register(h, true) }

// register adds h; an id may be registered once.
func (s *Server) register(h *handler, builtin bool) error {
	if !builtin && strings.HasPrefix(h.info.ID, reservedPrefix) {
		return Errorf(InvalidArgument, "function id %q: the %q prefix is reserved for Arbor's built-in functions", h.info.ID, reservedPrefix)
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	old := *s.handlers.Load()
	if _, dup := old[h.info.ID]; dup {
		return Errorf(AlreadyExists, "function %q is already registered", h.info.ID)
	}
	m := make(map[string]*handler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[h.info.ID] = h
	s.handlers.Store(&m) // copy on write: lookups take no lock
	return nil
}

func (s *Server) lookup(id string) *handler { return (*s.handlers.Load())[id] }

// lookupBytes is lookup without converting the id (no allocation).
func (s *Server) lookupBytes(id []byte) *handler { return (*s.handlers.Load())[string(id)] }

// Catalog lists the registered functions, sorted by id. Built-in
// functions (ids starting with "arbor.") are left out.
func (s *Server) Catalog() []FunctionInfo {
	m := *s.handlers.Load()
	out := make([]FunctionInfo, 0, len(m))
	for id, h := range m {
		if !strings.HasPrefix(id, reservedPrefix) {
			out = append(out, h.info)
		}
	}
	sortInfos(out)
	return out
}

// Function describes the function registered as id, built-ins included.
func (s *Server) Function(id string) (FunctionInfo, bool) {
	h := s.lookup(id)
	if h == nil {
		return FunctionInfo{}, false
	}
	return h.info, true
}

// Invoke runs function id in process with msgpack-encoded arguments (an
// array) and returns its msgpack-encoded result, through the server's
// interceptors, which see the metadata and peer of ctx when ctx is a
// handler's. Errors are *Error values with the codes a remote caller
// would see. Request-tree resolution runs functions this way.
func (s *Server) Invoke(ctx context.Context, id string, args []byte) ([]byte, error) {
	h := s.lookup(id)
	if h == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: "unknown function " + quote([]byte(id))}
	}
	if h.invoke == nil {
		return nil, Errorf(InvalidArgument, "%s is a %s function; it cannot be invoked as unary", id, h.info.Kind)
	}
	req := &Request{ID: id, Kind: KindUnary, Metadata: IncomingMetadata(ctx), Args: args, h: h}
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	resp, err := s.invokeChain(ctx, req)
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.Result, nil
}

// ListenAndServe listens on addr with the server's transport
// configuration and serves it until Shutdown or Close.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	l, err := transport.Listen(ctx, addr, s.cfg.transportConfig())
	if err != nil {
		return fromStatus(err)
	}
	return s.Serve(l)
}

// Listen binds addr with the server's transport configuration and serves
// it in the background until Shutdown or Close. The listener's URL is the
// address actually bound (port 0 resolved).
func (s *Server) Listen(ctx context.Context, addr string) (transport.Listener, error) {
	l, err := transport.Listen(ctx, addr, s.cfg.transportConfig())
	if err != nil {
		return nil, err
	}
	// Registered before Listen returns: URLs (which a cluster member
	// advertises) lists it at once.
	if err := s.addListener(l); err != nil {
		return nil, err
	}
	go s.accept(l)
	return l, nil
}

// URLs lists the addresses the server's listeners are bound to.
func (s *Server) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.urls...)
}

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Serve accepts connections on l until Shutdown or Close, then returns
// ErrServerClosed. Each connection is set up in its own goroutine, so a
// slow or hostile client cannot hold up others. Accept errors that pass
// (out of file descriptors, say) are retried with a backoff, and logged
// once per burst.
func (s *Server) Serve(l net.Listener) error {
	if err := s.addListener(l); err != nil {
		return err
	}
	return s.accept(l)
}

// addListener registers l (its URL, and for Close), or closes it if the
// server is closed already. accept then serves it.
func (s *Server) addListener(l net.Listener) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	if u, ok := l.(interface{ URL() string }); ok {
		s.urls = append(s.urls, u.URL())
	}
	s.wg.Add(1) // accept's
	return nil
}

// accept is Serve's loop on a registered listener.
func (s *Server) accept(l net.Listener) error {
	defer s.wg.Done()
	defer s.forgetListener(l)

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if !temporary(err) {
				l.Close()
				return err
			}
			if backoff == 0 { // once per burst
				s.logger.Warn("arbor: accept failed, retrying", "err", err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
			}
			t.Stop()
			continue
		}
		if backoff > 0 {
			s.logger.Info("arbor: accepting again")
			backoff = 0
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		if max := s.maxConns; max > 0 && len(s.conns)+len(s.setup) >= max {
			s.mu.Unlock()
			s.refuse(nc, fmt.Sprintf("server is at its connection limit (%d)", max))
			continue
		}
		s.setup[nc] = struct{}{} // so that Close need not wait for its handshake
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc)
	}
}

func (s *Server) forgetListener(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	if u, ok := l.(interface{ URL() string }); ok {
		for i, x := range s.urls {
			if x == u.URL() {
				s.urls = append(s.urls[:i], s.urls[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
}

// temporary reports an accept error that passes: out of descriptors or
// memory, a connection aborted before it was accepted, a timeout.
func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EAGAIN, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// refuse turns a connection away with a GOAWAY that says why (on plain
// transports; a TLS one is closed, its handshake not worth doing).
func (s *Server) refuse(nc net.Conn, why string) {
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		nc.Write(wire.AppendGoAway(nil, wire.GoAway{Code: uint32(ResourceExhausted), Message: []byte(why)}))
	}
	nc.Close()
	s.failLog.log(s.logger, "arbor: connection refused", "remote", nc.RemoteAddr().String(), "why", why)
}

func (s *Server) serveConn(nc net.Conn) {
	handedOver := false // to cfg.OnClose, which then calls s.wg.Done
	defer func() {
		if !handedOver {
			s.wg.Done()
		}
	}()
	cfg := s.cfg.connConfig()
	cfg.Handler = s.serve
	cfg.Budget = s.budget
	cfg.RetainBudget = s.retained
	cfg.Logger = s.connLogger
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
			s.failLog.log(s.logger, "arbor: TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
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
	// Once registered, a connection is forgotten by OnClose when it ends:
	// no goroutine per connection waits for that.
	registered := make(chan *conn.Conn, 1)
	cfg.OnClose = func(*conn.Conn) {
		c := <-registered
		if c == nil {
			return // set-up failed; serveConn did the rest
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}
	c, err := conn.Server(nc, cfg)
	if err != nil {
		registered <- nil
		s.setupDone(nc)
		s.failLog.log(s.logger, "arbor: connection set-up failed", "remote", nc.RemoteAddr().String(), "err", err)
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
	handedOver = true
	registered <- c
	if s.onConn != nil {
		s.onConn(c)
	}
	if closed {
		if drain != nil {
			c.Drain(drain, "server shutting down")
		} else {
			c.Close()
		}
	}
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
// lets running calls finish (new calls are refused with a retryable
// Unavailable), then closes. Connections still in their handshake are
// drained in turn once set up (or dropped when their handshake times
// out). If ctx ends first, the remaining connections are closed at once
// and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
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

// Close closes all listeners and connections at once; running handlers
// see their contexts cancelled.
func (s *Server) Close() error {
	s.draining.Store(true)
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
	if !s.closed {
		close(s.done)
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

// MemoryInUse reports the bytes the server's connections hold of its
// memory budget (Config.MaxMemory): request copies and unwritten results.
func (s *Server) MemoryInUse() int64 { return s.budget.Used() }
