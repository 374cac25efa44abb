package wire

import (
	"io"
	"testing"
)

// Ready says whether Next would return at once: only when a whole frame
// is buffered, never for a header alone or half a payload.
func TestReaderReady(t *testing.T) {
	var frames []byte
	frames = AppendFrame(frames, TypeResult, 0, 1, []byte("first"))
	frames = AppendFrame(frames, TypeResult, 0, 3, []byte("second"))
	pr, pw := io.Pipe()
	defer pr.Close()
	r := NewReader(pr, 4096, 1<<20)
	if r.Ready() {
		t.Fatal("ready with nothing read")
	}
	// Both frames and half of a third arrive in one read.
	third := AppendFrame(nil, TypeResult, 0, 5, []byte("third frame"))
	go pw.Write(append(append([]byte(nil), frames...), third[:HeaderSize+3]...))
	for i, want := range []string{"first", "second"} {
		_, p, err := r.Next()
		if err != nil || string(p) != want {
			t.Fatalf("frame %d: %q, %v", i, p, err)
		}
		if got := r.Ready(); got != (i == 0) {
			t.Fatalf("after frame %d: Ready = %v (the next frame is %s)", i, got, map[bool]string{true: "whole", false: "half there"}[i == 0])
		}
	}
	go pw.Write(third[HeaderSize+3:])
	if _, p, err := r.Next(); err != nil || string(p) != "third frame" {
		t.Fatalf("third frame: %q, %v", p, err)
	}
	if r.Ready() {
		t.Fatal("ready after the last frame")
	}
	// A header Next will refuse counts as ready: the error comes at once.
	r = NewReader(&oneShot{b: []byte{0xff, 0xff, 0xff, 0xff, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}}, 4096, 1<<20)
	r.Peek(HeaderSize)
	if !r.Ready() {
		t.Fatal("a malformed header is not reported ready")
	}
}

type oneShot struct{ b []byte }

func (o *oneShot) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, o.b)
	o.b = o.b[n:]
	return n, nil
}
