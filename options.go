package arbor

import (
	"log/slog"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/transport"
)

// Option configures a Server (NewServer) or a Client (Dial). Options that
// concern only one side are ignored by the other. Every setting has a safe
// default, so no option is required.
type Option func(*options)

type options struct {
	logger             *slog.Logger
	interceptors       []Interceptor
	streamInterceptors []StreamInterceptor
	conn               conn.Config
	transport          *transport.Config
}

func buildOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	o.conn.Logger = o.logger
	return o
}

// WithLogger sets where connection events and protocol errors are logged
// (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithInterceptors adds unary interceptors; the first is the outermost.
func WithInterceptors(ics ...Interceptor) Option {
	return func(o *options) { o.interceptors = append(o.interceptors, ics...) }
}

// WithKeepAlive sets the keep-alive ping interval proposed to the peer (the
// connection uses the smaller of both sides'; negative turns it off on this
// side) and how long a connection may stay silent before the peer is
// declared dead (zero: twice the interval). Default 30s.
func WithKeepAlive(interval, timeout time.Duration) Option {
	return func(o *options) { o.conn.KeepAlive, o.conn.KeepAliveTimeout = interval, timeout }
}

// WithMaxFrameSize sets the largest frame this side accepts (default 4 MiB).
// Calls and results are single frames, so it also bounds their size.
func WithMaxFrameSize(n uint32) Option { return func(o *options) { o.conn.MaxFrame = n } }

// WithMaxConcurrentCalls bounds the calls a connection serves at once
// (default 1024); further calls fail with ResourceExhausted.
func WithMaxConcurrentCalls(n uint32) Option { return func(o *options) { o.conn.MaxConcurrent = n } }

// WithMaxConcurrentStreams bounds the streams a connection serves at once
// (default 256); further streams fail with ResourceExhausted.
func WithMaxConcurrentStreams(n uint32) Option {
	return func(o *options) { o.conn.MaxConcurrentStreams = n }
}

// WithMaxRetainedAnswers bounds the promise answers a client may make a
// server connection keep at once (default 10000); beyond it calls that
// ask for retention are refused with ResourceExhausted.
func WithMaxRetainedAnswers(n uint32) Option { return func(o *options) { o.conn.MaxRetained = n } }

// WithMaxRetainedBytes bounds the total size of the promise answers a
// server connection keeps (default 64 MiB); an answer over it is kept as a
// ResourceExhausted error that calls depending on it receive.
func WithMaxRetainedBytes(n uint32) Option { return func(o *options) { o.conn.MaxRetainedBytes = n } }

// WithStreamWindow sets the flow-control windows this side grants: unread
// stream bytes buffered per stream and per connection before senders wait
// (defaults 256 KiB and 1 MiB).
func WithStreamWindow(perStream, perConn uint32) Option {
	return func(o *options) { o.conn.StreamWindow, o.conn.ConnWindow = perStream, perConn }
}

// WithHandshakeTimeout bounds connection set-up (default 10s).
func WithHandshakeTimeout(d time.Duration) Option {
	return func(o *options) { o.conn.HandshakeTimeout = d }
}

// WithTransport sets the transport configuration: TLS files, server name,
// the mem network for mem: addresses.
func WithTransport(cfg *transport.Config) Option { return func(o *options) { o.transport = cfg } }
