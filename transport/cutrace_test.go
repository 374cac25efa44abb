//go:build unix

package transport

import (
	"math/rand/v2"
	"testing"
	"time"
)

// A Write that TLS makes while a cut comes and goes at once (a KeyUpdate
// response from TLS's reader, blocked in the full socket, while the
// connection layer cuts a write and ends the cut right away: its writer
// was between two chunks, or done) must not fail: the past deadline it
// saw is the cut's, and a failed Write breaks the TLS connection for good.
// Cut and EndCut back to back, many times, with a Write blocked in the
// socket; the peer then reads every byte, in order.
func TestTLSWriteDuringABriefCutDoesNotFail(t *testing.T) {
	c, peer := tlsStuckPair(t)
	cw := NewTryWriter(c).(Cutter)
	b := make([]byte, 16<<10)
	off := 0
	for i := range 500 {
		pattern(b, off)
		off += len(b)
		done := make(chan error, 1)
		go func() { _, err := c.Write(b); done <- err }()
		time.Sleep(200 * time.Microsecond) // blocked in the full socket
		cw.Cut()
		for end := time.Now().Add(time.Duration(rand.IntN(60)) * time.Microsecond); time.Now().Before(end); {
		} // the writer ends the cut soon: at once, or a few microseconds later
		cw.EndCut(time.Time{})
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: a Write a brief cut stopped failed: %v", i, err)
			}
			continue
		case <-time.After(2 * time.Millisecond): // it saw no deadline: blocked again
		}
		cw.Cut()
		err := <-done
		cw.EndCut(time.Time{})
		if err != nil {
			t.Fatalf("round %d: a cut Write failed: %v", i, err)
		}
	}
	tail := make([]byte, 5000)
	pattern(tail, off)
	werr := make(chan error, 1)
	go func() { _, err := c.Write(tail); werr <- err }()
	readPattern(t, c, peer, off+len(tail))
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}
