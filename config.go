package arbor

import (
	"context"
	"log/slog"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// Config gathers every setting of a server or client in one value, like
// RpcNet's RpcConfig: TLS material, the address to bind or dial, keep-alive
// and limits. Start from DefaultConfig and change what you need; apply it
// with WithConfig. Individual options given after it override it.
type Config struct {
	// Addr is where a server listens (port 0 picks a free port; read the
	// chosen one back from the listener) or what a client dials.
	Addr string
	// CertFile and KeyFile: the server's certificate, or the client's for
	// mutual TLS. CAFile: on a server, requires client certificates signed
	// by it; on a client, the roots that verify the server.
	CertFile, KeyFile, CAFile string
	// ServerName is the name a client verifies (default: the host).
	ServerName string
	// KeepAlive is the ping interval proposed to the peer; both ends use
	// the smaller of the two proposals so their pings stay in step.
	// Negative turns it off on this side.
	KeepAlive time.Duration
	// KeepAliveTimeout is how long a silent peer is tolerated (0: twice
	// the agreed interval).
	KeepAliveTimeout time.Duration
	// HandshakeTimeout bounds connection set-up.
	HandshakeTimeout time.Duration
	// MaxFrameSize bounds one call, result or stream message.
	MaxFrameSize uint32
	// MaxConcurrentCalls and MaxConcurrentStreams bound what one
	// connection may have running on a server.
	MaxConcurrentCalls, MaxConcurrentStreams uint32
	// StreamWindow and ConnWindow are the flow-control windows granted.
	StreamWindow, ConnWindow uint32
	// Logger receives connection events (default: discard).
	Logger *slog.Logger
}

// DefaultConfig returns the defaults, spelled out.
func DefaultConfig() Config {
	return Config{
		Addr:                 "tcp://127.0.0.1:7450",
		KeepAlive:            conn.DefaultKeepAlive,
		HandshakeTimeout:     10 * time.Second,
		MaxFrameSize:         wire.DefaultMaxFrame,
		MaxConcurrentCalls:   1024,
		MaxConcurrentStreams: 256,
		StreamWindow:         conn.DefaultStreamWindow,
		ConnWindow:           conn.DefaultConnWindow,
	}
}

// WithConfig applies every field of cfg (zero fields keep their defaults).
func WithConfig(cfg Config) Option {
	return func(o *options) {
		if cfg.Logger != nil {
			o.logger = cfg.Logger
		}
		o.conn.KeepAlive = cfg.KeepAlive
		o.conn.KeepAliveTimeout = cfg.KeepAliveTimeout
		o.conn.HandshakeTimeout = cfg.HandshakeTimeout
		o.conn.MaxFrame = cfg.MaxFrameSize
		o.conn.MaxConcurrent = cfg.MaxConcurrentCalls
		o.conn.MaxConcurrentStreams = cfg.MaxConcurrentStreams
		o.conn.StreamWindow, o.conn.ConnWindow = cfg.StreamWindow, cfg.ConnWindow
		if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != "" || cfg.ServerName != "" {
			t := transport.Config{}
			if o.transport != nil {
				t = *o.transport
			}
			t.CertFile, t.KeyFile, t.CAFile, t.ServerName = cfg.CertFile, cfg.KeyFile, cfg.CAFile, cfg.ServerName
			o.transport = &t
		}
	}
}

// Listen binds addr with the server's transport configuration and serves
// it in the background until Shutdown or Close. The listener's URL is the
// address actually bound (port 0 resolved).
func (s *Server) Listen(ctx context.Context, addr string) (transport.Listener, error) {
	l, err := transport.Listen(ctx, addr, s.opts.transport)
	if err != nil {
		return nil, err
	}
	started := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		close(started)
		s.Serve(l)
	}()
	<-started
	return l, nil
}
