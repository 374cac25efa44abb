//go:build unix

package transport

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// pattern fills b with the stream's bytes from offset off on, so that a
// reader can tell a byte lost, doubled or out of order.
func pattern(b []byte, off int) {
	for i := range b {
		b[i] = byte((off + i) * 7 / 5)
	}
}

// tlsStuckPair returns a tls:// connection and its peer's side, which
// reads nothing until the test does, both with small socket buffers.
func tlsStuckPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln, err := Listen(ctx, "tls://127.0.0.1:0", &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		if err := c.(*tls.Conn).HandshakeContext(ctx); err != nil {
			c.Close()
			c = nil
		}
		accepted <- c
	}()
	c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	peer := <-accepted
	if peer == nil {
		t.Fatal("the server's handshake failed")
	}
	t.Cleanup(func() { peer.Close() })
	peer.(*tls.Conn).NetConn().(*spillConn).SetReadBuffer(4 << 10) // the server side is one too
	sc, ok := c.(*tls.Conn).NetConn().(*spillConn)
	if !ok {
		t.Fatalf("a tls:// connection over %T, want a spillConn", c.(*tls.Conn).NetConn())
	}
	sc.SetWriteBuffer(4 << 10)
	return c, peer
}

// readPattern reads n bytes from peer and checks they are the stream's
// pattern from 0. It first gives the sockets of c and peer (tlsStuckPair's)
// larger buffers: 4 KiB ones crawl (delayed acknowledgements).
func readPattern(t *testing.T, c, peer net.Conn, n int) {
	t.Helper()
	c.(*tls.Conn).NetConn().(*spillConn).SetWriteBuffer(1 << 20)
	peer.(*tls.Conn).NetConn().(*spillConn).SetReadBuffer(1 << 20)
	peer.SetReadDeadline(time.Now().Add(testTimeout))
	got := make([]byte, n)
	if k, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("the peer read %d of %d bytes: %v", k, n, err)
	}
	want := make([]byte, n)
	pattern(want, 0)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("byte %d of %d: %#x, want %#x", i, n, got[i], want[i])
		}
	}
}

// A TryWrite on a tls:// connection whose peer stopped reading returns at
// once, however full the socket: it takes what went (held: the end of a
// record the socket took only part of, kept below TLS), then nothing
// until a blocking Write, which sends the held bytes first. The peer,
// once it reads, gets every byte TryWrite took and the Write's, in order.
func TestTLSTryWriteNeverWaits(t *testing.T) {
	c, peer := tlsStuckPair(t)
	tw := NewTryWriter(c)
	if tw == nil {
		t.Fatal("NewTryWriter of a tls:// connection: nil")
	}

	taken, held := 0, false
	b := make([]byte, 3000) // within one piece: a spill is always held
	for held == false && taken < 64<<20 {
		pattern(b, taken)
		done := make(chan struct{})
		var n int
		var err error
		go func() { n, held, err = tw.TryWrite(b); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("TryWrite waited for seconds, %d bytes into a socket nobody reads", taken)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != len(b) {
			t.Fatalf("TryWrite of one piece took %d of %d bytes", n, len(b))
		}
		taken += n
	}
	if !held {
		t.Fatal("TryWrite never held anything back, 64 MB into a socket nobody reads")
	}
	if n, h, err := tw.TryWrite(b); n != 0 || h || err != nil {
		t.Fatalf("TryWrite while bytes are held: %d, %v, %v; want 0, false, nil", n, h, err)
	}

	tail := make([]byte, 5000)
	pattern(tail, taken)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(tail); werr <- err }() // waits for the peer
	readPattern(t, c, peer, taken+len(tail))
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	// Nothing held now: TryWrite takes again.
	binary.BigEndian.PutUint32(b, 1)
	if n, h, err := tw.TryWrite(b[:4]); n != 4 || h || err != nil {
		t.Fatalf("TryWrite once the peer read: %d, %v, %v; want 4, false, nil", n, h, err)
	}
}

// A Write on a tls:// connection blocked in a full socket returns at once
// when its connection's Cutter cuts it, as if it had written everything,
// and the connection still works: after EndCut the next Write sends what
// the cut one had left first, and the peer reads every byte in order.
func TestTLSCutEndsTheWriteAtOnce(t *testing.T) {
	c, peer := tlsStuckPair(t)
	cw, ok := NewTryWriter(c).(Cutter)
	if !ok {
		t.Fatal("a tls:// connection's TryWriter is no Cutter")
	}
	big := make([]byte, 4<<20) // far more than the sockets hold
	pattern(big, 0)
	done := make(chan error, 1)
	go func() {
		n, err := c.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("a 4 MB write into a socket nobody reads returned (%v) before the cut", err)
	case <-time.After(100 * time.Millisecond):
	}
	cw.Cut()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the cut Write: %v, want success", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the Write went on for seconds after the cut")
	}
	cw.EndCut(time.Time{})
	tail := make([]byte, 5000)
	pattern(tail, len(big))
	go func() { _, err := c.Write(tail); done <- err }()
	readPattern(t, c, peer, len(big)+len(tail))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
