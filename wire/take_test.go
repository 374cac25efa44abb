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

// A 1 MiB payload read from a stream costs one buffer of its size:
// the buffer still grows 4× as bytes arrive, but the steps short of the
// frame's size come from the pools and go back; a granted frame
// (SetGrant) skips the steps after the first.
func TestReadBigAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	payload := make([]byte, 1<<20)
	frame := AppendFrame(nil, TypeResult, 0, 1, payload)
	for _, granted := range []bool{false, true} {
		br := bytes.NewReader(frame)
		r := NewReader(br, 32<<10, 2<<20)
		if granted {
			r.SetGrant(func(Header) bool { return true })
		}
		read := func() {
			br.Reset(frame)
			r.Reset(br)
			if _, p, err := r.Next(); err != nil || len(p) != len(payload) {
				t.Fatalf("read: %d bytes, %v", len(p), err)
			}
			r.Take() // the buffer goes: the next read allocates again
		}
		read() // fills the pools
		const runs = 20
		per := float64(allocated(func() {
			for range runs {
				read()
			}
		})) / runs / float64(len(payload))
		// Bytes, not allocations: a GC (about one per frame here, with a
		// small heap) empties the pools now and then, and re-arming one
		// allocates a little. Without the pools the steps cost 1.31×.
		if per > 1.15 {
			t.Fatalf("granted %v: %.2f× the payload allocated per 1 MiB frame, want about 1×", granted, per)
		}
	}
}
