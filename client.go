package arbor

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/transport"
)

// Client calls functions on one server address over one multiplexed
// connection, which it re-establishes when the server goes away or the
// connection breaks. Safe for concurrent use.
type Client struct {
	addr  string
	opts  options
	chain UnaryFunc // nil without interceptors

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

// Dial connects to addr (tcp://host:port, tls://host:port, unix:/path,
// mem:name) and returns a client once the connection is up.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	c := &Client{addr: addr, opts: buildOptions(opts)}
	c.life, c.stop = context.WithCancel(context.Background())
	c.opts.conn.Handler = clientHandler{} // callbacks into services the client passes
	if len(c.opts.interceptors) > 0 {
		c.chain = chain(c.opts.interceptors, c.final)
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
		return nil, &Error{Code: Unavailable, Category: status.ErrConnection, Message: "client is closed"}
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
	nc, err := transport.Dial(ctx, c.addr, c.opts.transport)
	if err == nil {
		// The HELLO exchange has its own timeout; a closing client (or the
		// dial timeout) cuts it short too.
		stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
		cc, err = conn.Client(nc, c.opts.conn)
		stop()
	}
	if err != nil {
		err = dialError(c.addr, err)
	}
	c.mu.Lock()
	c.dialing = nil
	if err == nil && c.closed {
		cc.Close()
		cc, err = nil, &Error{Code: Unavailable, Category: status.ErrConnection, Message: "client is closed"}
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
	cat := status.ErrConnection
	code := Unavailable
	var alert tls.AlertError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.Is(err, transport.ErrConfig):
		cat, code = status.ErrConfig, InvalidArgument
	case errors.As(err, &alert) || errors.As(err, &certErr) || isTLSAlert(err) || errors.Is(err, transport.ErrTLS):
		// A TLS failure once connected: one side refused the other's
		// certificate (QUIC reports the peer's alert as a CRYPTO_ERROR
		// wrapped in transport.ErrTLS). A failure of identity.
		cat, code = status.ErrTLS, Unauthenticated
	case errors.Is(err, context.DeadlineExceeded):
		cat, code = status.ErrTimeout, DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = Canceled
	default:
		var se *Error
		if errors.As(err, &se) && se.Category != nil {
			cat = se.Category
		}
	}
	msg := "dial " + addr
	var se *Error
	if errors.As(err, &se) { // the HELLO exchange failed; don't repeat its code
		return &Error{Code: code, Category: cat, Message: msg + ": " + se.Message, Retryable: se.Retryable, Cause: err}
	}
	return status.Wrap(code, cat, err, msg)
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

// invoke sends encoded arguments and returns the encoded result. A non-nil
// reply owns the result's buffer: release it once the result is decoded.
func (c *Client) invoke(ctx context.Context, fn string, args []byte) ([]byte, *conn.Reply, error) {
	if c.chain != nil {
		req := &Request{Function: fn, Metadata: outgoingMetadata(ctx), Args: args}
		if cc := c.cur.Load(); cc != nil {
			req.Peer = peerOf(cc.NetConn())
		}
		resp, err := c.chain(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		return resp.Result, nil, nil
	}
	rep, err := c.send(ctx, fn, outgoingMetadata(ctx), args)
	if err != nil {
		return nil, nil, err
	}
	return rep.Result(), rep, nil
}

func release(rep *conn.Reply) {
	if rep != nil {
		rep.Release()
	}
}

// send makes the call on the current connection. A call refused because
// the server was going away never ran, so it is retried once on a new
// connection.
func (c *Client) send(ctx context.Context, fn string, md Metadata, args []byte) (*conn.Reply, error) {
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		rep, err := cc.Call(ctx, fn, md, args)
		if err != nil && attempt == 0 && refused(err) && ctx.Err() == nil {
			cc.Retire() // the refusal may beat the GOAWAY that explains it
			continue
		}
		return rep, err
	}
}

// refused reports an error for a call the server never ran.
func refused(err error) bool {
	var se *Error
	return errors.As(err, &se) && se.Code == Unavailable && se.Retryable
}

// final is the end of the client's interceptor chain.
func (c *Client) final(ctx context.Context, req *Request) (*Response, error) {
	rep, err := c.send(ctx, req.Function, req.Metadata, req.Args)
	if err != nil {
		return nil, err
	}
	resp := &Response{Result: append([]byte(nil), rep.Result()...)}
	rep.Release()
	return resp, nil
}

// Invoke calls fn with msgpack-encoded arguments (an array) and returns
// the msgpack-encoded result. Typed code should use Call0..Call3.
func (c *Client) Invoke(ctx context.Context, fn string, args []byte) ([]byte, error) {
	res, rep, err := c.invoke(ctx, fn, args)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), res...)
	release(rep)
	return out, nil
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
