//go:build unix

package conn

import (
	"net"
	"os"
	"syscall"
)

// rawWriter writes to a socket what it takes at once, without waiting for
// room: a caller that writes its own frames (flushLocked) is then never
// held by a peer that stopped reading, and leaves the rest to the writer
// goroutine. It is used by the connection's one writer at a time.
type rawWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // w.write, made once
	buf []byte
	n   int
	err error
}

// newTryWriter returns a rawWriter for a socket (the connection gives it
// its TCP and Unix ones), else nil.
func newTryWriter(nc net.Conn) tryWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{rc: rc}
	w.fn = w.write
	return w
}

func (w *rawWriter) write(fd uintptr) bool {
	for w.n < len(w.buf) {
		n, err := syscall.Write(int(fd), w.buf[w.n:])
		if n > 0 {
			w.n += n
		}
		switch err {
		case nil:
		case syscall.EINTR:
		case syscall.EAGAIN:
			return true // full: the rest waits for the writer goroutine
		default:
			w.err = os.NewSyscallError("write", err)
			return true
		}
	}
	return true
}

// TryWrite implements tryWriter.
func (w *rawWriter) TryWrite(b []byte) (int, error) {
	w.buf, w.n, w.err = b, 0, nil
	err := w.rc.Write(w.fn)
	n := w.n
	if err == nil {
		err = w.err
	}
	w.buf, w.err = nil, nil
	return n, err
}
