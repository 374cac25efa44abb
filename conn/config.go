package conn

import (
	"context"
	"log/slog"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// Config configures one connection. The zero value is usable: every field
// has a safe default.
type Config struct {
	// MaxFrame is the largest frame payload this side accepts (default
	// 4 MiB). The peer learns it in HELLO and never sends more.
	MaxFrame uint32
	// MaxConcurrent bounds the calls this side serves at once (default
	// 1024); a call beyond it is refused with ResourceExhausted.
	MaxConcurrent uint32
	// MaxConcurrentStreams bounds the streams this side serves at once
	// (default 256); they count against MaxConcurrent too.
	MaxConcurrentStreams uint32
	// KeepAlive is the ping interval this side proposes; the connection
	// uses the smaller of both sides' proposals. Zero means the default
	// (30s); negative turns keep-alive off on this side.
	KeepAlive time.Duration
	// KeepAliveTimeout is how long the connection may go without receiving
	// any frame, pings included, before the peer is declared dead
	// (default: twice the interval this side proposed, or the agreed one
	// if longer: a peer asking for quick pings does not shorten it).
	KeepAliveTimeout time.Duration
	// HandshakeTimeout bounds the HELLO exchange (default 10s).
	HandshakeTimeout time.Duration
	// ReadBufferSize is the reader's buffer while the connection is busy
	// (default 32 KiB); a quiet one reads into a small buffer instead
	// (wire.SmallBuffer) and gives the full one back to a shared pool.
	ReadBufferSize int
	// MaxPendingWrite bounds queued outgoing bytes; writers block beyond
	// it until the socket drains (default 4 MiB).
	MaxPendingWrite int
	// MaxRetained bounds the answers the peer may ask this side to keep for
	// promise pipelining at once (default 10000); beyond it calls are
	// refused with ResourceExhausted until the peer releases some.
	MaxRetained uint32
	// MaxRetainedBytes bounds the retained answers' total size (default
	// 64 MiB); an answer over it is kept as a ResourceExhausted error.
	MaxRetainedBytes uint32
	// MaxChain bounds the length of a chain of promises (a call that
	// uses the answer of a call that uses …, as an argument, a target or
	// a promised capability), default 1000: a call that would make a
	// longer one is refused with ResourceExhausted.
	MaxChain int
	// StreamWindow is how many bytes of unread stream messages this side
	// buffers per stream before the sender must wait (default 256 KiB),
	// each message counted with its frame header (16 bytes, so that empty
	// messages count too); ConnWindow bounds the same across all streams
	// (default 1 MiB).
	StreamWindow uint32
	ConnWindow   uint32
	// MaxMemory bounds the bytes the peer's calls may hold at once on this
	// connection: request copies until their handler returns, results
	// until written (default 32 MiB, at least twice MaxFrame). When it is
	// spent the connection stops reading until bytes come back.
	MaxMemory int64
	// Budget, when set, is shared by many connections (a server's) and
	// bounds the same bytes across them.
	Budget *Budget
	// RetainBudget, when set, is shared by many connections (a server's)
	// and bounds their retained answers' bytes together, as
	// MaxRetainedBytes bounds one connection's: an answer that does not
	// fit is kept as a ResourceExhausted error. (A pool of its own: held
	// until the peer releases them, retained answers must never stop a
	// connection reading, which is how the peer releases them.)
	RetainBudget *Budget
	// Heartbeat, when set, is called with the round trip of every answer
	// to this side's keep-alive pings, which are then sent every interval
	// even on a busy connection: a regular signal for a failure detector.
	// It runs on the reader goroutine and must return at once.
	Heartbeat func(rtt time.Duration)
	// Handler serves the peer's calls. Nil refuses them with Unimplemented.
	Handler Handler
	// BaseContext is the parent of every handler's context, for values
	// such as the peer's identity. Its cancellation is not watched.
	BaseContext context.Context
	// Logger receives protocol errors and connection events (default: a
	// logger that discards).
	Logger *slog.Logger
	// Observer, when set, sees the connection's life and every call on
	// it (observe.go): metrics and tracing. Nil by default.
	Observer Observer
	// OnClose, when set, is called once after the connection has closed
	// and its goroutines have ended, on a goroutine of its own: an owner
	// keeping a list of connections needs no goroutine per connection
	// waiting on Done.
	OnClose func(*Conn)
}

// DefaultMaxChain bounds promise chains when nothing else is set.
const DefaultMaxChain = 1000

// DefaultMaxMemory is a connection's memory budget when none is set.
const DefaultMaxMemory = 32 << 20

// DefaultKeepAlive is the keep-alive interval when none is configured.
const DefaultKeepAlive = 30 * time.Second

// Default flow-control windows (also what a peer's zero window means).
const (
	DefaultStreamWindow = 256 << 10
	DefaultConnWindow   = 1 << 20
)

func (c Config) withDefaults() Config {
	if c.MaxFrame == 0 {
		c.MaxFrame = wire.DefaultMaxFrame
	}
	c.MaxFrame = min(max(c.MaxFrame, wire.MinMaxFrame), wire.MaxMaxFrame)
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 1024
	}
	if c.MaxRetained == 0 {
		c.MaxRetained = 10000
	}
	if c.MaxRetainedBytes == 0 {
		c.MaxRetainedBytes = 64 << 20
	}
	if c.MaxChain <= 0 {
		c.MaxChain = DefaultMaxChain
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 256
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 32 << 10
	}
	if c.StreamWindow == 0 {
		c.StreamWindow = DefaultStreamWindow
	}
	if c.ConnWindow == 0 {
		c.ConnWindow = DefaultConnWindow
	}
	c.StreamWindow = min(c.StreamWindow, 1<<30)
	c.ConnWindow = min(max(c.ConnWindow, c.StreamWindow), 1<<30)
	if c.MaxMemory <= 0 {
		c.MaxMemory = DefaultMaxMemory
	}
	c.MaxMemory = max(c.MaxMemory, 2*int64(c.MaxFrame))
	if c.MaxPendingWrite <= 0 {
		c.MaxPendingWrite = 4 << 20
	}
	if c.BaseContext == nil {
		c.BaseContext = context.Background()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
