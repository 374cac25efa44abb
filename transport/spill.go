package transport

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// spillConn is the TCP socket under a tls:// connection this package
// makes. A plain pass-through for every Write but those of a TryWrite on
// the TLS connection above (tlsTryWriter): while one is under way, the
// records TLS writes go to the socket without waiting for room (a
// rawWriter), and what of them the socket does not take is kept (the
// spill), to go first with the next blocking Write. A spill holds at most
// one piece's records (tlsPiece): TryWrite stops at the first piece the
// socket did not take whole. A cut (Cutter) spills likewise what the
// Write it stops had left, at most the records of the one chunk its
// caller writes at a time.
type spillConn struct {
	*net.TCPConn
	raw *rawWriter

	// mu is held across each Write, a blocking one included: TLS's own
	// writes (alerts, key updates) may come from its reader goroutine,
	// and the spill must go before them. Close does not take it.
	mu    sync.Mutex
	try   bool   // a TryWrite is under way: Writes do not wait
	spill []byte // written by TLS, not yet by the socket

	// cuts counts Cut and EndCut calls, odd while a cut is under way
	// (Cutter): a Write that a deadline stops while a cut is, or was at
	// some point during that Write, keeps what it had left in the spill
	// and reports success, so TLS's state holds. Changed without mu: the
	// Write it stops holds mu. (A flag cleared by EndCut would not do: a
	// Write the cut's deadline stopped may look at it just after.)
	cuts atomic.Uint64

	// closing: the connection is being closed (Closing): no Write waits
	// any more, what the socket has no room for goes with it.
	closing atomic.Bool
}

// withSpill returns c under a spillConn when it is a TCP socket that can
// be written without waiting, else c itself.
func withSpill(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw := newRawWriter(tc)
	if raw == nil {
		return c
	}
	return &spillConn{TCPConn: tc, raw: raw}
}

// Write implements net.Conn.
func (s *spillConn) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cuts := s.cuts.Load()
	closing := s.closing.Load()
	if closing && len(s.spill) > 0 {
		n, _, err := s.raw.TryWrite(s.spill) // what room there is: the held bytes first
		s.spill = s.spill[n:]
		if err != nil {
			return 0, err
		}
	}
	if s.try || closing {
		if len(s.spill) > 0 {
			s.spill = append(s.spill, b...)
			return len(b), nil
		}
		n, _, err := s.raw.TryWrite(b)
		if err == nil && n < len(b) {
			s.spill = append(s.spill, b[n:]...)
			n = len(b)
		}
		return n, err
	}
	if len(s.spill) > 0 {
		n, err := s.TCPConn.Write(s.spill)
		s.spill = s.spill[n:]
		if err != nil {
			if !s.cut(err, cuts) {
				return 0, err
			}
			s.spill = append(s.spill, b...)
			return len(b), nil
		}
		s.spill = nil // spills are rare: no buffer kept for the next
	}
	n, err := s.TCPConn.Write(b)
	if err != nil && s.cut(err, cuts) {
		s.spill = append(s.spill, b[n:]...)
		n, err = len(b), nil
	}
	return n, err
}

// cut reports whether err, which ended a Write that began when s.cuts
// was cuts, is a cut's deadline: a cut was under way when it began or has
// begun since (see cuts).
func (s *spillConn) cut(err error, cuts uint64) bool {
	return (cuts&1 == 1 || s.cuts.Load() != cuts) && errors.Is(err, os.ErrDeadlineExceeded)
}

// tlsPiece is how much plaintext a TryWrite hands TLS at a time: the
// records of one piece are what a spill may hold.
const tlsPiece = 16 << 10

// tlsTryWriter is a tls:// connection's TryWriter (see spillConn).
type tlsTryWriter struct {
	tc *tls.Conn
	sc *spillConn
}

// TryWrite implements TryWriter. It takes nothing while a blocking write
// is under way or a spill waits, and stops after the first piece of b the
// socket did not take whole: then held is true when that was the last.
func (w *tlsTryWriter) TryWrite(b []byte) (int, bool, error) {
	s := w.sc
	if !s.mu.TryLock() {
		return 0, false, nil // a write waits for room: so would this one
	}
	if len(s.spill) > 0 {
		s.mu.Unlock()
		return 0, false, nil
	}
	s.try = true
	s.mu.Unlock()
	n := 0
	var err error
	for n < len(b) {
		var m int
		m, err = w.tc.Write(b[n:min(len(b), n+tlsPiece)])
		n += m
		if err != nil {
			break
		}
		s.mu.Lock()
		spilled := len(s.spill) > 0
		s.mu.Unlock()
		if spilled {
			break
		}
	}
	s.mu.Lock()
	s.try = false
	held := len(s.spill) > 0
	s.mu.Unlock()
	return n, held, err
}

// pastDeadline is a write deadline that has passed: setting it wakes a
// write blocked on the socket at once.
var pastDeadline = time.Unix(1, 0)

// Cut implements Cutter: the socket's past deadline stops the blocked
// write, and what TLS has handed it since goes to the spill.
func (w *tlsTryWriter) Cut() {
	w.sc.cuts.Add(1) // odd: before the deadline, which a Write may see at once
	_ = w.sc.TCPConn.SetWriteDeadline(pastDeadline)
}

// Closing implements QuickCloser: from now on the socket's Writes do not
// wait, so tls.Conn's Close, whose close_notify would wait behind held
// bytes in a full socket for up to 5 s, returns at once.
func (w *tlsTryWriter) Closing() { w.sc.closing.Store(true) }

// EndCut implements Cutter. The deadline goes back first: a Write that
// begins once the cut is over no longer meets the cut's.
func (w *tlsTryWriter) EndCut(deadline time.Time) {
	_ = w.sc.TCPConn.SetWriteDeadline(deadline)
	w.sc.cuts.Add(1)
}
