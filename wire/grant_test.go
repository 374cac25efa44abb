package wire

import (
	"bytes"
	"io"
	"testing"
)

// A granted large payload gets its whole buffer once its first part has
// arrived, not before: a header alone, or a header and a little, is
// never granted, and a refused grant reads the payload all the same.
func TestReaderGrant(t *testing.T) {
	payload := bytes.Repeat([]byte("grant"), 1<<18)
	frame := AppendFrame(nil, TypeCall, 0, 7, payload)
	for _, answer := range []bool{true, false} {
		var asked []Header
		r := NewReader(bytes.NewReader(frame), 4096, 2<<20)
		r.SetGrant(func(h Header) bool { asked = append(asked, h); return answer })
		h, p, err := r.Next()
		if err != nil || !bytes.Equal(p, payload) {
			t.Fatalf("grant %v: %v, %d bytes", answer, err, len(p))
		}
		if len(asked) != 1 || asked[0] != h {
			t.Fatalf("grant %v: asked %v, want once for %v", answer, asked, h)
		}
	}

	for _, sent := range []int{0, 1000, 2*4096 - 1} {
		asked := 0
		r := NewReader(bytes.NewReader(frame[:HeaderSize+sent]), 4096, 2<<20)
		r.SetGrant(func(Header) bool { asked++; return true })
		if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
			t.Fatalf("%d bytes sent: %v, want io.ErrUnexpectedEOF", sent, err)
		}
		if asked != 0 {
			t.Fatalf("%d bytes of a %d-byte payload sent: grant asked %d times", sent, len(payload), asked)
		}
	}

	// A frame of at most twice the read buffer is read in one step:
	// nothing to grant.
	asked := 0
	r := NewReader(bytes.NewReader(AppendFrame(nil, TypeCall, 0, 9, payload[:8000])), 4096, 2<<20)
	r.SetGrant(func(Header) bool { asked++; return true })
	if _, p, err := r.Next(); err != nil || len(p) != 8000 || asked != 0 {
		t.Fatalf("8000-byte frame: %v, %d bytes, grant asked %d times", err, len(p), asked)
	}
}

// unzeroed starts with a copy of what it is given and has exactly the
// capacity asked for: nothing past it (stale heap bytes) is reachable.
func TestUnzeroed(t *testing.T) {
	p := bytes.Repeat([]byte("ab"), 1000)
	q := unzeroed(p, 1<<20+3)
	if !bytes.Equal(q, p) || cap(q) != 1<<20+3 {
		t.Fatalf("len %d cap %d, want a copy of %d bytes with capacity %d", len(q), cap(q), len(p), 1<<20+3)
	}
	p[0] = 'x'
	if q[0] != 'a' {
		t.Fatal("unzeroed shares its input's array")
	}
	q = append(q, 'z')
	if q[len(p)] != 'z' {
		t.Fatal("the buffer's free part is not writable")
	}
	if e := unzeroed(nil, 100); len(e) != 0 || cap(e) != 100 {
		t.Fatalf("empty input: len %d cap %d", len(e), cap(e))
	}
}
