package wire

import (
	"bytes"
	"testing"
)

// Take hands a large payload's buffer over: the next large frame is read
// into another buffer and the taken payload stays as it was. A payload in
// the read buffer cannot be taken.
func TestReaderTake(t *testing.T) {
	a := bytes.Repeat([]byte{'a'}, 20000)
	b := bytes.Repeat([]byte{'b'}, 20000)
	var buf []byte
	buf = AppendFrame(buf, TypeResult, 0, 1, a)
	buf = AppendFrame(buf, TypeResult, 0, 3, []byte("small"))
	buf = AppendFrame(buf, TypeResult, 0, 5, b)
	r := NewReader(bytes.NewReader(buf), 4096, 1<<20)
	_, p1, err := r.Next()
	if err != nil || !r.Take() {
		t.Fatalf("first large frame: %v, or not taken", err)
	}
	if r.Take() {
		t.Fatal("one payload taken twice")
	}
	_, p2, err := r.Next()
	if err != nil || string(p2) != "small" || r.Take() {
		t.Fatalf("small frame: %q %v, or taken from the read buffer", p2, err)
	}
	_, p3, err := r.Next()
	if err != nil || !bytes.Equal(p3, b) {
		t.Fatalf("second large frame: %v", err)
	}
	if !bytes.Equal(p1, a) {
		t.Fatal("a taken payload was overwritten by the next large frame")
	}
}

// A 1 MiB payload read from a stream costs three allocations (the buffer
// grows 4× as bytes arrive, then to the frame's size), about 1.3× its size.
func TestReadBigAllocations(t *testing.T) {
	payload := make([]byte, 1<<20)
	frame := AppendFrame(nil, TypeResult, 0, 1, payload)
	br := bytes.NewReader(frame)
	r := NewReader(br, 32<<10, 2<<20)
	allocs := testing.AllocsPerRun(20, func() {
		br.Reset(frame)
		r.Reset(br)
		if _, p, err := r.Next(); err != nil || len(p) != len(payload) {
			t.Fatalf("read: %d bytes, %v", len(p), err)
		}
		r.Take() // the buffer goes: the next read allocates again
	})
	if allocs > 3 {
		t.Fatalf("%.1f allocations per 1 MiB frame, want at most 3", allocs)
	}
}
