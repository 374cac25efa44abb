package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// delayedPair returns a client connection delayed by d to an echo server
// whose accepted connections are delayed by d too: a link with a round
// trip of 2d.
func delayedPair(t *testing.T, d time.Duration) net.Conn {
	t.Helper()
	ctx := testContext(t)
	ln, err := Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	dl := DelayListener(ln, d)
	if dl.URL() != ln.URL() {
		t.Fatalf("URL = %q, want %q", dl.URL(), ln.URL())
	}
	echo(t, dl)
	raw, err := Dial(ctx, dl.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := Delay(raw, d)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDelayRoundTrip(t *testing.T) {
	const d = 50 * time.Millisecond
	c := delayedPair(t, d)
	for i := range 3 {
		msg := []byte("ping " + string(rune('a'+i)))
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if w := time.Since(start); w > d/2 {
			t.Errorf("Write took %v: it should return at once", w)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		rt := time.Since(start)
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo %q, want %q", got, msg)
		}
		if rt < 2*d {
			t.Fatalf("round trip through two ends delayed by %v took %v, want >= %v", d, rt, 2*d)
		}
		t.Logf("round trip %v", rt)
	}
}

// Many writes of varied sizes, past the in-flight limit, come back
// complete and in order.
func TestDelayOrder(t *testing.T) {
	c := delayedPair(t, 2*time.Millisecond)
	var want []byte
	var chunks [][]byte
	for i := range 1000 {
		n := 1 + (i*7919)%20000
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(len(want) + j)
		}
		b[0] = byte(i) // distinct chunk boundaries
		want = append(want, b...)
		chunks = append(chunks, b)
	}
	errc := make(chan error, 1)
	go func() {
		for _, b := range chunks {
			if _, err := c.Write(b); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("%d bytes echoed; first difference at byte %d", len(want), i)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// Close delivers what was written before it, unblocks Read, refuses
// later writes and stops the delivery goroutine.
func TestDelayClose(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
	const d = 50 * time.Millisecond
	ctx := testContext(t)
	ln, err := Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	received := make(chan []byte, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			received <- nil
			return
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(testTimeout))
		b, _ := io.ReadAll(s) // until the client's FIN
		received <- b
	}()
	raw, err := Dial(ctx, ln.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := Delay(raw, d)

	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1)) // the server never writes
		readErr <- err
	}()

	var want []byte
	for i := range 100 {
		b := []byte{byte(i), 'x', 'y'}
		want = append(want, b...)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	took := time.Since(start)
	if took < d/2 || took > d+delayCloseTimeout {
		t.Errorf("Close took %v, want about %v (flushing)", took, d)
	}
	select {
	case <-c.(*delayConn).done:
	default:
		t.Fatal("delivery goroutine still running after Close")
	}
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked Read returned %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := <-received; !bytes.Equal(got, want) {
		t.Fatalf("peer got %d bytes %q..., want the %d written before Close", len(got), got[:min(len(got), 9)], len(want))
	}
}

// A connection whose peer has gone reports the failed delivery on a
// later Write, and Close still returns promptly.
func TestDelayWriteError(t *testing.T) {
	ctx := testContext(t)
	ln, err := Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if s, err := ln.Accept(); err == nil {
			s.Close()
		}
	}()
	raw, err := Dial(ctx, ln.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := Delay(raw, time.Millisecond)
	defer c.Close()
	deadline := time.Now().Add(testTimeout)
	for time.Now().Before(deadline) {
		if _, err = c.Write(make([]byte, 1024)); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write to a closed peer kept succeeding (last error %v)", err)
	}
}
