package conn

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
)

// minWriteConn is a TCP connection that asks for writes of at least min
// bytes (as transport's quic:// connections do) and records the shortest
// write after the handshake.
type minWriteConn struct {
	net.Conn
	min int

	mu       sync.Mutex
	writes   int
	shortest int
}

func (c *minWriteConn) MinWrite() int { return c.min }

func (c *minWriteConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	if c.writes > 1 && (c.shortest == 0 || len(b) < c.shortest) { // the first is HELLO
		c.shortest = len(b)
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestMinWritePads checks that a connection whose transport asks for a
// minimum write size pads every shorter write with a PAD frame, and that
// the peer skips the padding: calls with tiny and large payloads still
// echo exactly.
func TestMinWritePads(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mw *minWriteConn
	dial := func() (net.Conn, error) {
		nc, err := net.Dial("tcp", l.Addr().String())
		mw = &minWriteConn{Conn: nc, min: 128}
		return mw, err
	}
	cc, sc := connectPair(t, l, dial, Config{}, Config{}, &testHandler{})
	for _, msg := range []string{"", "x", strings.Repeat("y", 100), strings.Repeat("z", 5000)} {
		got, err := callString(t, cc, context.Background(), "echo", msg)
		if err != nil || got != msg {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
		}
	}
	mw.mu.Lock()
	shortest, writes := mw.shortest, mw.writes
	mw.mu.Unlock()
	if writes < 5 || shortest < 128 {
		t.Fatalf("%d writes, shortest %d bytes after HELLO; want every one padded to >= 128", writes, shortest)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("server: %v", err)
	}
}
