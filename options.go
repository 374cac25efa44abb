package arbor

import (
	"context"
	"log/slog"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// ServerOption configures a Server (NewServer).
type ServerOption interface{ applyServer(*serverConfig) }

// ClientOption configures a Client (Dial).
type ClientOption interface{ applyClient(*clientConfig) }

// Option configures either side: it is both a ServerOption and a
// ClientOption. Options that concern only one side have that side's type,
// so passing a server option to Dial does not compile.
type Option interface {
	ServerOption
	ClientOption
}

// Config gathers the settings of a server or a client in one value, like
// RpcNet's RpcConfig. Start from DefaultConfig and change what you need;
// apply it with WithConfig. The With… options set the same fields, so an
// option given after WithConfig overrides that field and nothing else.
// Zero fields mean the default.
type Config struct {
	// CertFile and KeyFile: the server's certificate, or the client's for
	// mutual TLS. CAFile: on a server, requires client certificates
	// signed by it; on a client, the roots that verify the server.
	CertFile, KeyFile, CAFile string
	// ServerName is the name a client verifies (default: the host).
	ServerName string
	// KeepAlive is the ping interval proposed to the peer; both ends use
	// the smaller of the two proposals so their pings stay in step.
	// Negative turns it off on this side. Default 30s.
	KeepAlive time.Duration
	// KeepAliveTimeout is how long a silent peer is tolerated before the
	// connection is closed and its calls fail with Unavailable (default:
	// twice the agreed interval).
	KeepAliveTimeout time.Duration
	// HandshakeTimeout bounds connection set-up (default 10s).
	HandshakeTimeout time.Duration
	// MaxFrameSize bounds one call, result or stream message this side
	// accepts (default 4 MiB).
	MaxFrameSize uint32
	// StreamWindow and ConnWindow are the flow-control windows this side
	// grants: unread stream bytes buffered per stream and per connection
	// before senders wait (defaults 256 KiB and 1 MiB).
	StreamWindow, ConnWindow uint32
	// Logger receives connection events and protocol errors (default:
	// discard).
	Logger *slog.Logger

	// The rest bound what one peer can make a server hold (see
	// WithLimits); a client uses them for the callbacks it serves.

	// MaxConcurrentCalls and MaxConcurrentStreams bound what one
	// connection may have running (defaults 1024 and 256); further calls
	// are refused with ResourceExhausted.
	MaxConcurrentCalls, MaxConcurrentStreams uint32
	// MaxRetainedAnswers and MaxRetainedBytes bound the promise answers
	// one connection keeps (defaults 10000 and 64 MiB); a server's
	// connections together keep at most MaxMemory bytes of them (a pool
	// of its own, beside the one below). An answer over either is kept
	// as a ResourceExhausted error.
	MaxRetainedAnswers, MaxRetainedBytes uint32
	// MaxConnMemory bounds the bytes one connection's calls hold at once
	// (requests until their handler returns, results until written;
	// default 32 MiB); MaxMemory bounds the same over all of a server's
	// connections (default 256 MiB). When either is spent the server stops
	// reading that connection until bytes come back: backpressure, not
	// growth.
	MaxConnMemory, MaxMemory int64
	// MaxConnections bounds a server's open connections (default 10000,
	// and never more than the process's file descriptor limit allows);
	// beyond it new connections are refused with a GOAWAY that says so.
	MaxConnections int
	// MaxPromiseChain bounds chains of promises (a call using the answer
	// of a call using …, as an argument, a target or a promised
	// capability passed on; default 1000): a client refuses a longer one
	// before sending it, a server refuses its calls.
	MaxPromiseChain int
}

// Defaults of the limits in Config.
const (
	DefaultMaxMemory      = 256 << 20
	DefaultMaxConnections = 10000
)

// DefaultConfig returns the defaults, spelled out.
func DefaultConfig() Config {
	return Config{
		KeepAlive:            conn.DefaultKeepAlive,
		HandshakeTimeout:     10 * time.Second,
		MaxFrameSize:         wire.DefaultMaxFrame,
		StreamWindow:         conn.DefaultStreamWindow,
		ConnWindow:           conn.DefaultConnWindow,
		MaxConcurrentCalls:   1024,
		MaxConcurrentStreams: 256,
		MaxRetainedAnswers:   10000,
		MaxRetainedBytes:     64 << 20,
		MaxConnMemory:        conn.DefaultMaxMemory,
		MaxMemory:            DefaultMaxMemory,
		MaxConnections:       DefaultMaxConnections,
		MaxPromiseChain:      conn.DefaultMaxChain,
	}
}

// common is what both sides are configured with.
type common struct {
	cfg          Config
	interceptors []Interceptor
	transport    *transport.Config
	observer     conn.Observer // WithObserver (observe.go)
}

type serverConfig struct {
	common
	auth      TokenValidator
	bootstrap func(ctx context.Context) (*Service, error)
	noInline  bool
}

type clientConfig struct {
	common
	token     string
	heartbeat func(rtt time.Duration)
}

// logger is the configured logger or one that discards.
func (c *common) logger() *slog.Logger {
	if c.cfg.Logger != nil {
		return c.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// connConfig is the connection configuration the settings make.
func (c *common) connConfig() conn.Config {
	return conn.Config{
		MaxFrame:             c.cfg.MaxFrameSize,
		MaxConcurrent:        c.cfg.MaxConcurrentCalls,
		MaxConcurrentStreams: c.cfg.MaxConcurrentStreams,
		KeepAlive:            c.cfg.KeepAlive,
		KeepAliveTimeout:     c.cfg.KeepAliveTimeout,
		HandshakeTimeout:     c.cfg.HandshakeTimeout,
		MaxRetained:          c.cfg.MaxRetainedAnswers,
		MaxRetainedBytes:     c.cfg.MaxRetainedBytes,
		StreamWindow:         c.cfg.StreamWindow,
		ConnWindow:           c.cfg.ConnWindow,
		MaxMemory:            c.cfg.MaxConnMemory,
		MaxChain:             c.cfg.MaxPromiseChain,
		Logger:               c.logger(),
		Observer:             c.observer,
	}
}

// transportConfig merges the TLS fields of Config into the transport
// configuration.
func (c *common) transportConfig() *transport.Config {
	t := transport.Config{}
	if c.transport != nil {
		t = *c.transport
	}
	if c.cfg.CertFile != "" {
		t.CertFile = c.cfg.CertFile
	}
	if c.cfg.KeyFile != "" {
		t.KeyFile = c.cfg.KeyFile
	}
	if c.cfg.CAFile != "" {
		t.CAFile = c.cfg.CAFile
	}
	if c.cfg.ServerName != "" {
		t.ServerName = c.cfg.ServerName
	}
	return &t
}

// bothOption sets something both sides have.
type bothOption func(*common)

func (f bothOption) applyServer(c *serverConfig) { f(&c.common) }
func (f bothOption) applyClient(c *clientConfig) { f(&c.common) }

type serverOption func(*serverConfig)

func (f serverOption) applyServer(c *serverConfig) { f(c) }

type clientOption func(*clientConfig)

func (f clientOption) applyClient(c *clientConfig) { f(c) }

// WithConfig sets every field of Config at once; options after it change
// single fields.
func WithConfig(cfg Config) Option { return bothOption(func(c *common) { c.cfg = cfg }) }

// WithLogger sets where connection events and protocol errors are logged
// (default: nowhere).
func WithLogger(l *slog.Logger) Option { return bothOption(func(c *common) { c.cfg.Logger = l }) }

// WithInterceptors adds interceptors; the first is the outermost. On a
// server they see every incoming call (functions, capability methods,
// streams and the functions request trees run); on a client, every call
// it makes (unary, promises, calls on references, streams). A server
// interceptor may call next more than once (a retry): the handler runs
// again on the same arguments, except capabilities in them, which go to
// the first run only (a later one fails with Internal, saying so).
func WithInterceptors(ics ...Interceptor) Option {
	return bothOption(func(c *common) { c.interceptors = append(c.interceptors, ics...) })
}

// WithKeepAlive sets the keep-alive ping interval proposed to the peer
// and how long a silent peer is tolerated (zero: twice the interval).
func WithKeepAlive(interval, timeout time.Duration) Option {
	return bothOption(func(c *common) { c.cfg.KeepAlive, c.cfg.KeepAliveTimeout = interval, timeout })
}

// WithMaxFrameSize sets the largest frame this side accepts (default
// 4 MiB). Calls and results are single frames, so it bounds them too.
func WithMaxFrameSize(n uint32) Option { return bothOption(func(c *common) { c.cfg.MaxFrameSize = n }) }

// WithStreamWindow sets the flow-control windows this side grants per
// stream and per connection.
func WithStreamWindow(perStream, perConn uint32) Option {
	return bothOption(func(c *common) { c.cfg.StreamWindow, c.cfg.ConnWindow = perStream, perConn })
}

// WithHandshakeTimeout bounds connection set-up (default 10s).
func WithHandshakeTimeout(d time.Duration) Option {
	return bothOption(func(c *common) { c.cfg.HandshakeTimeout = d })
}

// WithTransport sets the transport configuration: a ready *tls.Config,
// the MemNetwork of mem: addresses. TLS file names in Config win over
// the ones here.
func WithTransport(cfg *transport.Config) Option {
	return bothOption(func(c *common) { c.transport = cfg })
}

// Limits bounds what one peer can make a server hold; zero fields keep
// their current value. See Config for each one's meaning and default.
type Limits struct {
	MaxConcurrentCalls, MaxConcurrentStreams uint32
	MaxRetainedAnswers, MaxRetainedBytes     uint32
	MaxConnMemory, MaxMemory                 int64
	MaxConnections, MaxPromiseChain          int
}

// WithLimits sets a server's resource limits.
func WithLimits(l Limits) ServerOption {
	return serverOption(func(c *serverConfig) {
		set := func(dst *uint32, v uint32) {
			if v != 0 {
				*dst = v
			}
		}
		set(&c.cfg.MaxConcurrentCalls, l.MaxConcurrentCalls)
		set(&c.cfg.MaxConcurrentStreams, l.MaxConcurrentStreams)
		set(&c.cfg.MaxRetainedAnswers, l.MaxRetainedAnswers)
		set(&c.cfg.MaxRetainedBytes, l.MaxRetainedBytes)
		if l.MaxConnMemory != 0 {
			c.cfg.MaxConnMemory = l.MaxConnMemory
		}
		if l.MaxMemory != 0 {
			c.cfg.MaxMemory = l.MaxMemory
		}
		if l.MaxConnections != 0 {
			c.cfg.MaxConnections = l.MaxConnections
		}
		if l.MaxPromiseChain != 0 {
			c.cfg.MaxPromiseChain = l.MaxPromiseChain
		}
	})
}

// WithoutInline makes every call run on a connection's worker pool, even
// those of functions whose calls have proven quick, which otherwise run on
// the connection's reader (see "Where handlers run" in the package doc):
// for comparing the two, or for handlers that must never share the reader.
func WithoutInline() ServerOption {
	return serverOption(func(c *serverConfig) { c.noInline = true })
}

// WithHeartbeat makes the client ping its server every keep-alive interval,
// busy or not, and call fn with the round trip of each answer, on the
// connection's reader (fn must return at once): the signal a failure
// detector (the cluster client's phi-accrual) and a latency estimate need.
func WithHeartbeat(fn func(rtt time.Duration)) ClientOption {
	return clientOption(func(c *clientConfig) { c.heartbeat = fn })
}
