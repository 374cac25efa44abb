package wire

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// chunks is an io.Reader that returns one chunk per Read (as a socket
// returns what has arrived), split further only by the caller's buffer.
type chunks struct{ parts [][]byte }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	if c.parts[0] = c.parts[0][n:]; len(c.parts[0]) == 0 {
		c.parts = c.parts[1:]
	}
	return n, nil
}

// The read buffer follows the traffic: small while frames come one per
// read, full-size while a read fills the small one or a frame does not
// fit in it, small again after a quiet read; every payload arrives whole
// whichever buffer it was read into.
func TestReaderBufferFollowsTraffic(t *testing.T) {
	const full = 8 << 10
	frame := func(id uint64, n int) []byte {
		return AppendFrame(nil, TypeResult, 0, id, bytes.Repeat([]byte{byte('a' + id%26)}, n))
	}
	var busy []byte // many frames in one read
	for i := range 40 {
		busy = append(busy, frame(uint64(100+i), 100)...)
	}
	steps := []struct {
		chunk []byte
		ids   []uint64
		sizes []int
		want  int // BufferSize after the chunk's frames were read
	}{
		{frame(1, 40), []uint64{1}, []int{40}, SmallBuffer},
		{frame(2, 60), []uint64{2}, []int{60}, SmallBuffer},
		{busy, nil, nil, full},
		{frame(3, 40), []uint64{3}, []int{40}, full},        // read into the full buffer: quiet now
		{frame(4, 40), []uint64{4}, []int{40}, SmallBuffer}, // read into the small one again
		{frame(5, 3000), []uint64{5}, []int{3000}, full},    // does not fit the small buffer
		{frame(6, 40), []uint64{6}, []int{40}, full},
		{frame(7, 40), []uint64{7}, []int{40}, SmallBuffer},
		{frame(8, 20000), []uint64{8}, []int{20000}, full}, // larger than the full buffer (readBig)
		{frame(9, 40), []uint64{9}, []int{40}, full},
		{frame(10, 40), []uint64{10}, []int{40}, SmallBuffer},
	}
	for i := range 40 {
		steps[2].ids = append(steps[2].ids, uint64(100+i))
		steps[2].sizes = append(steps[2].sizes, 100)
	}
	src := &chunks{}
	for _, s := range steps {
		src.parts = append(src.parts, s.chunk)
	}
	r := NewReader(src, full, 1<<20)
	r.quiet = 0 // every read counts as a quiet period (TestReaderQuietPeriod checks it)
	if r.BufferSize() != SmallBuffer {
		t.Fatalf("new reader: buffer %d, want %d", r.BufferSize(), SmallBuffer)
	}
	for si, s := range steps {
		for k, id := range s.ids {
			h, p, err := r.Next()
			if err != nil {
				t.Fatalf("step %d frame %d: %v", si, id, err)
			}
			if h.ID != id || len(p) != s.sizes[k] || !bytes.Equal(p, bytes.Repeat([]byte{byte('a' + id%26)}, s.sizes[k])) {
				t.Fatalf("step %d: frame %d (%d bytes) read as frame %d with %d bytes or corrupted", si, id, s.sizes[k], h.ID, len(p))
			}
		}
		if got := r.BufferSize(); got != s.want {
			t.Fatalf("step %d: buffer %d after its frames, want %d", si, got, s.want)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
}

// A frame split across many small reads is reassembled, growing the
// buffer when it does not fit the small one, and a read error after data
// is reported once the data is used up.
func TestReaderSplitFrames(t *testing.T) {
	in := AppendFrame(nil, TypeData, 0, 1, bytes.Repeat([]byte{'s'}, 2000))
	in = AppendFrame(in, TypeData, 0, 2, []byte("tail"))
	src := &chunks{}
	for i := 0; i < len(in); i += 7 {
		src.parts = append(src.parts, in[i:min(i+7, len(in))])
	}
	r := NewReader(src, 4096, 1<<20)
	h, p, err := r.Next()
	if err != nil || h.ID != 1 || !bytes.Equal(p, bytes.Repeat([]byte{'s'}, 2000)) {
		t.Fatalf("first frame: %v %v", h, err)
	}
	h, p, err = r.Next()
	if err != nil || h.ID != 2 || string(p) != "tail" {
		t.Fatalf("second frame: %v %q %v", h, p, err)
	}
	trunc := AppendFrame(nil, TypeData, 0, 3, []byte("cut short"))
	r = NewReader(bytes.NewReader(trunc[:len(trunc)-3]), 4096, 1<<20)
	if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

// The full-size buffer goes back only after QuietPeriod without a large
// read: traffic that alternates large and small reads keeps it.
func TestReaderQuietPeriod(t *testing.T) {
	const full = 8 << 10
	var busy []byte
	for i := range 40 {
		busy = AppendFrame(busy, TypeResult, 0, uint64(i+1), make([]byte, 100))
	}
	small := AppendFrame(nil, TypeResult, 0, 99, []byte("q"))
	src := &chunks{parts: [][]byte{busy, small, small, small}}
	r := NewReader(src, full, 1<<20)
	r.quiet = int64(time.Hour)
	for range 42 {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.BufferSize(); got != full {
		t.Fatalf("small reads right after a large one: buffer %d, want %d kept", got, full)
	}
	r.bigAt -= int64(2 * time.Hour) // the large read was long ago
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if got := r.BufferSize(); got != SmallBuffer {
		t.Fatalf("a small read a quiet period after the last large one: buffer %d, want %d", got, SmallBuffer)
	}
}

// A large payload read while the small buffer is held (its header came
// in a read of its own, the payload straight from the source) is not
// kept once the connection is quiet: a quiet connection holds
// SmallBuffer bytes, not a large payload's buffer.
func TestReaderQuietDropsLargePayloadBuffer(t *testing.T) {
	const full = 8 << 10
	frame := AppendFrame(nil, TypeResult, 0, 1, bytes.Repeat([]byte{'L'}, 3*full))
	small := AppendFrame(nil, TypeResult, 0, 2, []byte("q"))
	src := &chunks{parts: [][]byte{frame[:HeaderSize], frame[HeaderSize:], small, small}}
	r := NewReader(src, full, 1<<20)
	r.quiet = 0
	for range 3 {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.BufferSize(); got != SmallBuffer {
		t.Fatalf("quiet reader: buffer %d, want %d", got, SmallBuffer)
	}
	if cap(r.big) != 0 {
		t.Fatalf("quiet reader still holds a %d-byte buffer of a large payload", cap(r.big))
	}
}
