package transport

import (
	"crypto/tls"
	"net"
	"time"
)

// TryWriter writes to a connection what it takes at once, without waiting
// for room: the connection layer writes its callers' own frames with it,
// so that a caller is never held by a peer that stopped reading, and
// leaves the rest to a goroutine that may wait. NewTryWriter returns one
// for TCP, Unix and tls:// connections; a quic:// connection is one.
type TryWriter interface {
	// TryWrite writes a prefix of b and returns its length: n < len(b)
	// with a nil error says the connection is full. held says that some
	// bytes of what it took still wait below the connection (the end of
	// a TLS record the socket took only part of): the connection's next
	// Write sends them first, and nothing else does.
	TryWrite(b []byte) (n int, held bool, err error)
}

// NewTryWriter returns nc's TryWriter, or nil when it has none (its
// writes may wait): TCP and Unix sockets, tls:// connections this
// package made (over a spillConn), and connections that are TryWriters.
func NewTryWriter(nc net.Conn) TryWriter {
	switch c := nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		if w := newRawWriter(nc); w != nil {
			return w
		}
	case *tls.Conn:
		if sc, ok := c.NetConn().(*spillConn); ok {
			return &tlsTryWriter{tc: c, sc: sc}
		}
	case TryWriter:
		return c
	}
	return nil
}

// WriteCutter is a connection that a write deadline stops cleanly: a
// Write it stops has sent exactly the bytes it reports (the rest is
// untouched, and no reference to it is kept), and the connection stays
// usable, the next Write going on from there. TCP and Unix sockets are
// such, and a quic:// connection says so by being a WriteCutter; tls://
// is not (a Write a deadline stops leaves TLS's state broken). The
// connection layer cuts a large argument's write with a past deadline
// when its caller gives up.
type WriteCutter interface {
	net.Conn
	CutsWrites()
}

// Cutter is a TryWriter whose connection's write in progress can be
// stopped at once without breaking the connection, though a write
// deadline would break it (a tls:// connection's): after Cut, the Write
// under way, and any until EndCut, returns at once as if it had written
// everything, and what it had left goes out first with the next Write
// after EndCut, which sets the write deadline to deadline. Whoever cuts
// keeps each Write small (what a cut leaves is held in memory until then).
type Cutter interface {
	TryWriter
	Cut()
	EndCut(deadline time.Time)
}

// QuickCloser is a TryWriter whose connection's Close may wait to write
// (a tls:// connection's close_notify, behind bytes held below TLS, into
// a socket a peer that stopped reading keeps full: up to 5 s). Closing,
// called just before Close, makes every write from then on go without
// waiting: what the socket has no room for is dropped with the
// connection, as a plain socket's unsent bytes are.
type QuickCloser interface {
	TryWriter
	Closing()
}
