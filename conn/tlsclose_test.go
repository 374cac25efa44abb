//go:build unix

package conn

import (
	"crypto/tls"
	"syscall"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// fillSocket fills the socket under nc (TCP, or TLS over TCP) and the
// peer's receive buffer, which nobody reads, so that nothing more goes:
// bytes of its own, below TLS (its stream is garbage from here on; the
// peer reads nothing anyway).
func fillSocket(t *testing.T, nc interface {
	SyscallConn() (syscall.RawConn, error)
}) {
	t.Helper()
	rc, err := nc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 64<<10)
	for idle := 0; idle < 3; {
		wrote := 0
		rc.Write(func(fd uintptr) bool {
			for {
				n, err := syscall.Write(int(fd), junk)
				if n > 0 {
					wrote += n
				}
				if err != nil {
					return true
				}
			}
		})
		if wrote == 0 {
			idle++
		} else {
			idle = 0
		}
		time.Sleep(50 * time.Millisecond) // acknowledgements may make room
	}
}

// Close never waits for a peer that stopped reading: not on tcp, nor over
// TLS right after a goroutine's own write (flushLocked: a CANCEL, a
// handler's answer, here a PAD) left its bytes below TLS (held) for the
// writer goroutine to send. With no Write of the connection under way
// (the writer goroutine has not begun it yet, or sees the connection
// closed and never will), tls.Conn's Close sends close_notify, the held
// bytes first, into the full socket, for up to 5 s.
func TestCloseRightAfterHeldBytesIsPrompt(t *testing.T) {
	for _, sp := range stuckPeers {
		t.Run(sp.name, func(t *testing.T) {
			for round := range 6 {
				cc, _ := sp.peer(t, Config{})
				raw := cc.nc
				if tc, ok := raw.(*tls.Conn); ok {
					raw = tc.NetConn()
				}
				fillSocket(t, raw.(interface {
					SyscallConn() (syscall.RawConn, error)
				}))
				if err := cc.send(wire.AppendPad(nil, 100)); err != nil { // the caller's own write: all held
					t.Fatal(err)
				}
				start := time.Now()
				cc.Close()
				if d := time.Since(start); d > time.Second {
					t.Fatalf("round %d: Close took %v", round, d)
				}
			}
		})
	}
}
