package arbor

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// Client calls functions on one server address over one multiplexed
// connection, which it re-establishes when the server goes away or the
// connection breaks. It is a Caller. Safe for concurrent use; Close it
// when done.
type Client struct {
	addr   string
	cfg    clientConfig
	logger *slog.Logger
	chain  CallFunc // interceptors around send; nil without any
	serve  *dispatcher

	cur     atomic.Pointer[conn.Conn]
	mu      sync.Mutex // guards what follows
	old     []*conn.Conn
	closed  bool
	dialing *dialCall // the dial in progress, shared by every caller
	life    context.Context
	stop    context.CancelFunc // cancels dials when the client closes
	dials   sync.WaitGroup
}

// dialCall is one connection attempt that callers wait on, each with its
// own context: a caller whose deadline passes stops waiting, the others
// (and the dial) go on.
type dialCall struct {
	done chan struct{}
	cc   *conn.Conn
	err  error
}

// Dial connects to addr (tcp://host:port, tls://host:port,
// quic://host:port, unix:/path, mem:name) and returns a client once the
// connection is up.
func Dial(ctx context.Context, addr string, opts ...ClientOption) (*Client, error) {
	c := &Client{addr: addr}
	c.cfg.cfg = Config{}
	for _, o := range opts {
		o.applyClient(&c.cfg)
	}
	c.logger = c.cfg.logger()
	c.life, c.stop = context.WithCancel(context.Background())
	c.serve = &dispatcher{} // callbacks into services the client passes
	if len(c.cfg.interceptors) > 0 {
		c.chain = chain(c.cfg.interceptors, c.send)
	}
	if _, err := c.conn(ctx); err != nil {
		c.Close() // stops a dial still in progress
		return nil, err
	}
	return c, nil
}

// Addr is the address the client dials.
func (c *Client) Addr() string { return c.addr }

// conn returns a usable connection, dialing if there is none. Concurrent
// callers share one dial and each waits with its own context.
func (c *Client) conn(ctx context.Context) (*conn.Conn, error) {
	if cc := c.cur.Load(); cc != nil && cc.Usable() {
		return cc, nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, &Error{Code: Unavailable, Category: ErrConnection, Message: "client is closed"}
	}
	if cc := c.cur.Load(); cc != nil && cc.Usable() {
		c.mu.Unlock()
		return cc, nil
	}
	d := c.dialing
	if d == nil {
		d = &dialCall{done: make(chan struct{})}
		c.dialing = d
		c.dials.Add(1)
		go c.dial(d)
	}
	c.mu.Unlock()
	select {
	case <-d.done:
		return d.cc, d.err
	case <-ctx.Done():
		return nil, dialError(c.addr, ctx.Err())
	}
}

// dialTimeout bounds one connection attempt (transport and handshake).
const dialTimeout = 30 * time.Second

// dial makes one connection attempt for every caller waiting on d.
func (c *Client) dial(d *dialCall) {
	defer c.dials.Done()
	ctx, cancel := context.WithTimeout(c.life, dialTimeout)
	defer cancel()
	var cc *conn.Conn
	nc, err := transport.Dial(ctx, c.addr, c.cfg.transportConfig())
	if err == nil {
		// The HELLO exchange has its own timeout; a closing client (or the
		// dial timeout) cuts it short too.
		stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
		cfg := c.cfg.connConfig()
		cfg.Handler = c.serve
		cfg.Heartbeat = c.cfg.heartbeat
		cc, err = conn.Client(nc, cfg)
		stop()
	}
	if err != nil {
		err = dialError(c.addr, err)
	}
	c.mu.Lock()
	c.dialing = nil
	if err == nil && c.closed {
		cc.Close()
		cc, err = nil, &Error{Code: Unavailable, Category: ErrConnection, Message: "client is closed"}
	}
	if err == nil {
		if prev := c.cur.Swap(cc); prev != nil {
			c.old = append(c.old[:0:0], liveConns(c.old)...)
			c.old = append(c.old, prev) // draining: the server closes it when done
		}
	}
	c.mu.Unlock()
	d.cc, d.err = cc, err
	close(d.done)
}

func liveConns(cs []*conn.Conn) []*conn.Conn {
	out := cs[:0:0]
	for _, c := range cs {
		if c.Err() == nil {
			out = append(out, c)
		} else {
			c.Close()
		}
	}
	return out
}

func dialError(addr string, err error) error {
	err = fromStatus(err)
	cat := ErrConnection
	code := Unavailable
	var alert tls.AlertError
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	hint := ""
	switch {
	case errors.Is(err, transport.ErrConfig):
		cat, code = ErrConfig, InvalidArgument
	case errors.As(err, &alert) || errors.As(err, &certErr) || isTLSAlert(err) || errors.Is(err, transport.ErrTLS):
		// A TLS failure once connected: one side refused the other's
		// certificate (QUIC reports the peer's alert as a CRYPTO_ERROR
		// wrapped in transport.ErrTLS). A failure of identity.
		cat, code = ErrTLS, Unauthenticated
	case errors.As(err, &recErr):
		// A TLS client talking to a plain server.
		cat, hint = ErrTLS, " (the server may not speak TLS: try tcp://)"
	case errors.Is(err, context.DeadlineExceeded):
		cat, code = ErrTimeout, DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = Canceled
	default:
		var se *Error
		if errors.As(err, &se) && se.Category != nil {
			cat = se.Category
		}
	}
	msg := "dial " + addr
	// A call whose connection could not be made never left: it may be
	// sent again (elsewhere, by a cluster client) whatever it does.
	retryable := code == Unavailable && cat == ErrConnection
	var se *Error
	if errors.As(err, &se) { // the HELLO exchange failed; don't repeat its code
		return &Error{Code: code, Category: cat, Message: msg + ": " + se.Message + hint, Retryable: se.Retryable || retryable, Cause: err}
	}
	e := wrapErr(code, cat, err, msg)
	e.Message += hint
	e.Retryable = retryable
	return e
}

// isTLSAlert reports whether err is a TLS alert received from the peer.
// crypto/tls reports those as a *net.OpError with Op "remote error"
// around an unexported type, not as tls.AlertError. With TLS 1.3 a server
// that refuses the client's certificate says so this way, on the first
// read after the handshake.
func isTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// Call implements Caller: it sends req to the server through the
// client's interceptors.
func (c *Client) Call(ctx context.Context, req *Request) (*Response, error) {
	if c.cfg.token != "" {
		req.Metadata = append(req.Metadata[:len(req.Metadata):len(req.Metadata)], Pair{Key: AuthorizationKey, Value: "Bearer " + c.cfg.token})
	}
	if c.chain != nil {
		if cc := c.cur.Load(); cc != nil && req.Peer.Addr == nil {
			req.Peer = peerOf(cc.NetConn())
		}
		return c.chain(ctx, req)
	}
	return c.send(ctx, req)
}

// plain reports whether calls need no interceptor or option: the typed
// helpers' fast path, which makes no Request.
func (c *Client) plain() bool { return c.chain == nil && c.cfg.token == "" }

// Plain reports whether c's plain unary calls can take a Router's fast
// path: c has no interceptors and no bearer token. A Router should return
// a nil Client from Route, before choosing anything, when its Clients are
// not plain: the call then goes through its Call instead.
func (c *Client) Plain() bool { return c.plain() }

// send is the end of the client's chain: it picks the connection (the
// target's, the promises', or the current one) and sends the call.
func (c *Client) send(ctx context.Context, req *Request) (*Response, error) {
	if t := req.Target; t != nil {
		if t.local != nil {
			return callLocal(ctx, t.local, req)
		}
		return sendOn(ctx, t.cc, req, c)
	}
	if cc := req.boundConn(); cc != nil {
		return sendOn(ctx, cc, req, c)
	}
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := sendOn(ctx, cc, req, c)
		if err != nil && attempt == 0 && refused(err) && ctx.Err() == nil {
			// A call refused because the server was going away never
			// ran: once more on a new connection. The refusal may beat
			// the GOAWAY that explains it.
			cc.Retire()
			continue
		}
		return resp, err
	}
}

// sendOn sends req on cc: a unary call, an asynchronous call or a
// stream, with its target, promises and capabilities as frame fields.
// owner is the client whose interceptors references in the result use.
func sendOn(ctx context.Context, cc *conn.Conn, req *Request, owner *Client) (*Response, error) {
	var o conn.Outgoing
	if err := req.outgoing(cc, &o); err != nil {
		return nil, err
	}
	o.Idempotent = idempotentCall(ctx)
	if caps := o.Caps; len(caps) > 0 {
		// Shown never served by the peer's GOAWAY (a promise, a stream,
		// a cancelled call): the peer will not release them.
		// Kept until the answer, a GOAWAY or the close when the call is
		// cancelled: it holds no more than it needs (not req, whose
		// arguments the caller may have long dropped).
		o.Unserved = func() { undoExports(cc, caps) }
	}
	switch {
	case req.Kind.IsStream():
		st, err := cc.OpenStream(ctx, &o)
		if err != nil {
			undoExports(cc, o.Caps)
			return nil, fromStatus(err)
		}
		return &Response{Stream: rawStream{st}, raw: st, cc: cc, owner: owner}, nil
	case req.Async:
		o.Retain = true
		a, err := cc.Go(ctx, &o)
		if err != nil {
			undoExports(cc, o.Caps)
			return nil, fromStatus(err)
		}
		return &Response{async: a, cc: cc, owner: owner}, nil
	}
	rep, err := cc.Call(ctx, &o)
	if err != nil {
		if !o.Sent {
			undoExports(cc, o.Caps)
		}
		return nil, fromStatus(err)
	}
	// Interceptors may keep what they got: the result is copied out of
	// the pooled reply (the typed helpers' fast path does not copy).
	resp := &Response{Result: append([]byte(nil), rep.Result()...), cc: cc, owner: owner}
	if caps := rep.Caps(); len(caps) > 0 {
		resp.caps = append([]wire.CapDescriptor(nil), caps...)
	}
	rep.Release()
	return resp, nil
}

// outgoing fills in what the connection sends for req on cc.
func (req *Request) outgoing(cc *conn.Conn, o *conn.Outgoing) error {
	*o = conn.Outgoing{Function: req.ID, Metadata: req.Metadata, Args: req.Args}
	if t := req.Target; t != nil {
		if t.cc != cc {
			return Errorf(FailedPrecondition, "%s: the reference belongs to another connection", req.ID)
		}
		o.Target = &t.target
	}
	if len(req.promises) > 0 {
		o.Promises = make([]wire.PromiseRef, len(req.promises))
		for i, u := range req.promises {
			if u.p.cc != cc {
				return Errorf(FailedPrecondition, "%s: a promise argument belongs to another connection", req.ID)
			}
			o.Promises[i] = wire.PromiseRef{ID: u.p.async.ID(), Path: u.path}
		}
	}
	if req.caps != nil {
		var err error
		if o.Caps, err = req.caps.resolve(cc); err != nil {
			return err
		}
	}
	return nil
}

// undoExports releases the exports in caps, the table of a call made for
// cc, when the call was not sent or the peer did not serve it (refused
// by its GOAWAY: Outgoing.Sent is cleared then, or Outgoing.Unserved
// runs). A call the peer received, failed (even as Unavailable and
// retryable, which a handler or an interceptor may answer) or timed out,
// leaves them to the peer: it releases them itself, those a handler took
// included. An interceptor's other runs of a handler give theirs back
// with it too (resultRuns.settle).
func undoExports(cc *conn.Conn, caps []wire.CapDescriptor) {
	for _, d := range caps {
		if d.Kind == wire.CapSenderHosted {
			releaseExport(cc, d.ID, 1)
		}
	}
}

// boundConn is the connection the request's promises tie it to, or nil.
func (req *Request) boundConn() *conn.Conn {
	for _, u := range req.promises {
		if u.p.cc != nil {
			return u.p.cc
		}
	}
	return nil
}

// refused reports an error for a call the server never ran.
func refused(err error) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == Unavailable && se.Retryable
}

// Catalog asks the server for its functions.
func (c *Client) Catalog(ctx context.Context) ([]FunctionInfo, error) {
	return Call0[[]FunctionInfo](ctx, c, CatalogFunction)
}

// Close closes the client's connections; pending calls fail with
// Unavailable.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	old := c.old
	c.old = nil
	c.mu.Unlock()
	c.stop()
	c.dials.Wait() // a dial in progress ends (and closes what it made)
	if cc := c.cur.Load(); cc != nil {
		cc.Close()
	}
	for _, cc := range old {
		cc.Close()
	}
	return nil
}
