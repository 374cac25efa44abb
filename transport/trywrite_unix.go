//go:build unix

package transport

import (
	"net"
	"os"
	"syscall"
)

// rawWriter is a TCP or Unix socket's TryWriter: write system calls on
// the non-blocking socket until it has no more room (EAGAIN), never a
// wait in the poller. It is used by one writer at a time.
type rawWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // w.write, made once
	buf []byte
	n   int
	err error
}

// newRawWriter returns a rawWriter for a socket, else nil.
func newRawWriter(nc net.Conn) *rawWriter {
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
			return true // full: the rest is the caller's to queue
		default:
			w.err = os.NewSyscallError("write", err)
			return true
		}
	}
	return true
}

// TryWrite implements TryWriter; a socket holds nothing back.
func (w *rawWriter) TryWrite(b []byte) (int, bool, error) {
	w.buf, w.n, w.err = b, 0, nil
	err := w.rc.Write(w.fn)
	n := w.n
	if err == nil {
		err = w.err
	}
	w.buf, w.err = nil, nil
	return n, false, err
}
