package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Length: 77, Type: TypeResult, Flags: 3, ID: 1<<63 + 5}
	b := AppendHeader(nil, h)
	if len(b) != HeaderSize {
		t.Fatalf("header is %d bytes", len(b))
	}
	got, err := ParseHeader(b, 100)
	if err != nil || got != h {
		t.Fatalf("got %+v, %v; want %+v", got, err, h)
	}
}

func TestHeaderErrors(t *testing.T) {
	good := AppendHeader(nil, Header{Length: 10, Type: TypeCall, ID: 1})
	cases := []struct {
		name   string
		mutate func([]byte)
		limit  uint32
		want   string
	}{
		{"unknown type", func(b []byte) { b[4] = 200 }, 100, "unknown frame type 200"},
		{"zero type", func(b []byte) { b[4] = 0 }, 100, "unknown frame type 0"},
		{"reserved", func(b []byte) { b[7] = 1 }, 100, "reserved header bytes"},
		{"too large", func(b []byte) {}, 9, "frame length 10 exceeds limit 9"},
	}
	for _, c := range cases {
		b := bytes.Clone(good)
		c.mutate(b)
		_, err := ParseHeader(b, c.limit)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ParseHeader(good[:5], 100); err == nil {
		t.Error("short header accepted")
	}
}

// hugeLength is a reader that announces a 1 GiB frame and then would feed
// zeros forever; the reader must refuse it after the header.
type countingReader struct {
	data []byte
	read int
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.read < len(r.data) {
		n := copy(p, r.data[r.read:])
		r.read += n
		return n, nil
	}
	for i := range p {
		p[i] = 0
	}
	r.read += len(p)
	return len(p), nil
}

func TestReaderRefusesOversizeBeforeAllocating(t *testing.T) {
	cr := &countingReader{data: AppendHeader(nil, Header{Length: 1 << 30, Type: TypeCall, ID: 1})}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := NewReader(cr, 4096, 1<<20)
	_, _, err := r.Next()
	runtime.ReadMemStats(&after)
	var we *Error
	if !errors.As(err, &we) || !we.TooLarge {
		t.Fatalf("got %v, want a TooLarge wire error", err)
	}
	if cr.read > 4096 {
		t.Fatalf("read %d bytes of a refused frame", cr.read)
	}
	// The reader's own 4 KiB buffer and the error: nothing near 1 GiB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Fatalf("allocated %d bytes for a refused frame", n)
	}
}

func TestReaderFrames(t *testing.T) {
	var buf []byte
	buf = AppendHello(buf, Hello{Version: Version, MaxFrame: 1 << 20, MaxConcurrent: 10, KeepAlive: 3 * time.Second, StreamWindow: 7})
	buf, at := AppendCall(buf, &CallFrame{ID: 1, Timeout: 2 * time.Second, Function: "add", Metadata: []MD{{Key: "k", Value: "v"}, {Key: "auth", Value: "bearer x"}}})
	buf = append(buf, 0x92, 1, 2)
	EndFrame(buf, at)
	big := bytes.Repeat([]byte{'x'}, 10000) // larger than the read buffer
	buf = AppendFrame(buf, TypeResult, 0, 1, big)
	buf = AppendError(buf, 3, ErrorPayload{Code: 5, Retryable: true, Category: 8, Message: []byte("nope"), Details: []byte{9}})
	buf = AppendPing(buf, false, 42)
	buf = AppendGoAway(buf, GoAway{LastID: 7, Code: 14, Message: []byte("bye")})
	buf = AppendFrame(buf, TypeCancel, 0, 9, nil)
	buf = AppendCredit(buf, 11, 65536)

	r := NewReader(bytes.NewReader(buf), 4096, 1<<20)
	h, p, err := r.Next()
	if err != nil || h.Type != TypeHello {
		t.Fatalf("hello: %v %v", h, err)
	}
	hello, err := ParseHello(p)
	if err != nil || hello.StreamWindow != 7 || hello.KeepAlive != 3*time.Second || hello.MaxConcurrent != 10 || hello.MaxFrame != 1<<20 {
		t.Fatalf("hello: %+v %v", hello, err)
	}
	h, p, err = r.Next()
	if err != nil || h.Type != TypeCall || h.ID != 1 {
		t.Fatalf("call: %v %v", h, err)
	}
	c, err := ParseCall(h.Flags, p)
	if err != nil || string(c.Function) != "add" || c.Timeout != 2*time.Second || !bytes.Equal(c.Args, []byte{0x92, 1, 2}) {
		t.Fatalf("call: %+v %v", c, err)
	}
	md, err := ParseMetadata(nil, c.Metadata)
	if err != nil || len(md) != 2 || md[1] != (MD{Key: "auth", Value: "bearer x"}) {
		t.Fatalf("metadata: %v %v", md, err)
	}
	h, p, err = r.Next()
	if err != nil || h.Type != TypeResult || !bytes.Equal(p, big) {
		t.Fatalf("result: %v %v", h, err)
	}
	h, p, err = r.Next()
	if err != nil || h.Type != TypeError || h.ID != 3 {
		t.Fatalf("error: %v %v", h, err)
	}
	e, err := ParseError(p)
	if err != nil || e.Code != 5 || !e.Retryable || e.Category != 8 || string(e.Message) != "nope" || !bytes.Equal(e.Details, []byte{9}) {
		t.Fatalf("error: %+v %v", e, err)
	}
	h, p, _ = r.Next()
	if v, err := ParsePing(h.Type, p); err != nil || v != 42 || h.Type != TypePing {
		t.Fatalf("ping: %v %v", v, err)
	}
	h, p, _ = r.Next()
	g, err := ParseGoAway(p)
	if err != nil || h.Type != TypeGoAway || g.LastID != 7 || g.Code != 14 || string(g.Message) != "bye" {
		t.Fatalf("goaway: %+v %v", g, err)
	}
	h, p, err = r.Next()
	if err != nil || h.Type != TypeCancel || h.ID != 9 || len(p) != 0 {
		t.Fatalf("cancel: %v %v %v", h, p, err)
	}
	h, p, _ = r.Next()
	if n, err := ParseCredit(p); err != nil || h.Type != TypeCredit || h.ID != 11 || n != 65536 {
		t.Fatalf("credit: %v %v %v", h, n, err)
	}
	if _, _, err = r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestTruncatedFrame(t *testing.T) {
	b := AppendFrame(nil, TypeResult, 0, 1, []byte("hello"))
	r := NewReader(bytes.NewReader(b[:len(b)-2]), 4096, 1<<20)
	if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v", err)
	}
}

func TestPayloadErrorsNameOffsets(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"call empty", second(ParseCall(0, nil)), "timeout: truncated varint (at byte 16)"},
		{"call function too long", second(ParseCall(0, []byte{0, 10, 'a'})), "function id length 10 exceeds the 1 bytes left in the frame (at byte 18)"},
		{"call empty function", second(ParseCall(0, []byte{0, 0, 0})), "empty function id"},
		{"call metadata count", second(ParseCall(0, []byte{0, 1, 'f', 100})), "metadata count 100 exceeds"},
		{"call bad utf-8", second(ParseCall(0, []byte{0, 1, 0xff, 0})), "not valid UTF-8"},
		{"call unknown flag", second(ParseCall(128, []byte{0, 1, 'f', 0})), "unknown CALL flags"},
		{"call target kind", second(ParseCall(FlagTarget, []byte{0, 1, 'f', 0, 9, 1, 0})), "target kind 9 unknown"},
		{"call export path", second(ParseCall(FlagTarget, []byte{0, 1, 'f', 0, 1, 1, 1, 1, 3})), "a target export has no path"},
		{"call promise count", second(ParseCall(FlagPromises, []byte{0, 1, 'f', 0, 0})), "promise count 0 out of range"},
		{"call promise path", second(ParseCall(FlagPromises, []byte{0, 1, 'f', 0, 1, 5, 1, 7})), "path segment tag 7 unknown"},
		{"call path too long", second(ParseCall(FlagPromises, []byte{0, 1, 'f', 0, 1, 5, 100})), "path of 100 segments exceeds limit 64"},
		{"hello magic", second(ParseHello(make([]byte, 26))), "bad magic"},
		{"hello short", second(ParseHello(nil)), "want at least 26"},
		{"error flags", second(ParseError([]byte{1})), "flags: missing"},
		{"goaway short", second(ParseGoAway([]byte{1})), "want at least 8"},
		{"credit zero", second(ParseCredit([]byte{0})), "credit 0 out of range"},
		{"credit trailing", second(ParseCredit([]byte{1, 2})), "1 trailing bytes"},
		{"release zero", second(ParseRelease([]byte{0})), "RELEASE frame: reference count 0 out of range"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, c.err, c.want)
		}
	}
}

// TestCallFields round-trips a CALL with every optional field: the target
// and promise table are frame fields that the callee reads without looking
// at the arguments.
func TestCallFields(t *testing.T) {
	path := AppendPath(nil, []PathSegment{{Key: "Calc"}, {Index: 3, IsIndex: true}})
	f := &CallFrame{ID: 9, Stream: true, Retain: true, Timeout: time.Second, Function: "eval",
		Target:   &Target{Kind: TargetAnswer, ID: 7, Path: path},
		Promises: []PromiseRef{{ID: 3}, {ID: 5, Path: path}}}
	b, at := AppendCall(nil, f)
	b = append(b, 0x91, 0xd4, byte(PromiseExt), 1)
	EndFrame(b, at)
	h, err := ParseHeader(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if want := FlagStream | FlagRetain | FlagTarget | FlagPromises; h.Flags != want {
		t.Fatalf("flags %08b, want %08b", h.Flags, want)
	}
	c, err := ParseCall(h.Flags, b[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if !c.HasTarget || c.Target.Kind != TargetAnswer || c.Target.ID != 7 || !bytes.Equal(c.Target.Path, path) {
		t.Fatalf("target %+v", c.Target)
	}
	segs, err := ParsePath(c.Target.Path)
	if err != nil || len(segs) != 2 || segs[0].Key != "Calc" || !segs[1].IsIndex || segs[1].Index != 3 {
		t.Fatalf("path %+v %v", segs, err)
	}
	ps, err := ParsePromises(nil, c.Promises)
	if err != nil || len(ps) != 2 || ps[0].ID != 3 || ps[0].Path != nil || ps[1].ID != 5 || !bytes.Equal(ps[1].Path, path) {
		t.Fatalf("promises %+v %v", ps, err)
	}
	if !bytes.Equal(c.Args, []byte{0x91, 0xd4, byte(PromiseExt), 1}) {
		t.Fatalf("args %x", c.Args)
	}
	// A plain call has neither.
	b, at = AppendCall(nil, &CallFrame{ID: 1, Function: "f"})
	EndFrame(b, at)
	if c, err := ParseCall(b[5], b[HeaderSize:]); err != nil || c.HasTarget || c.Promises != nil {
		t.Fatalf("plain call: %+v %v", c, err)
	}
}

func TestCapTables(t *testing.T) {
	caps := []CapDescriptor{{Kind: CapSenderHosted, ID: 1}, {Kind: CapReceiverHosted, ID: 300},
		{Kind: CapReceiverAnswer, ID: 7, Path: AppendPath(nil, []PathSegment{{Key: "calc"}})}, {Kind: CapReceiverAnswer, ID: 8}}
	b, at := AppendCall(nil, &CallFrame{ID: 1, Function: "f", Caps: caps})
	b = append(b, 0x91, 0xd4, byte(CapabilityExt), 1)
	EndFrame(b, at)
	c, err := ParseCall(b[5], b[HeaderSize:])
	if err != nil || b[5]&FlagCaps == 0 {
		t.Fatalf("%v flags %b", err, b[5])
	}
	got, err := ParseCapTable(nil, c.Caps)
	if err != nil || !reflect.DeepEqual(got, caps) {
		t.Fatalf("%+v %v", got, err)
	}
	res := AppendResult(nil, 1, []byte{0xc0}, []MD{{Key: "k", Value: "v"}}, caps)
	h, _ := ParseHeader(res, 1<<20)
	r, err := ParseResult(h.Flags, res[HeaderSize:])
	if err != nil || string(r.Value) != "\xc0" {
		t.Fatalf("%+v %v", r, err)
	}
	if md, _ := ParseMetadata(nil, r.Trailer); len(md) != 1 {
		t.Fatalf("trailer %v", md)
	}
	if got, _ := ParseCapTable(nil, r.Caps); len(got) != 4 {
		t.Fatalf("result caps %v", got)
	}
	// An empty table, an unknown kind, a count beyond the entries, a
	// truncated id, an answer entry without its path or with a path over
	// the limit.
	for _, bad := range [][]byte{{0}, {1, 9, 1}, {2, 1, 1}, {1, 1, 0x80}, {1, 3, 1}, {1, 3, 1, 65}} {
		if _, err := ParseCall(FlagCaps, append([]byte{0, 1, 'f', 0}, bad...)); err == nil {
			t.Errorf("cap table %x accepted", bad)
		}
	}
	if _, err := ParseResult(8, nil); err == nil {
		t.Error("unknown RESULT flag accepted")
	}
}

func second[T any](_ T, err error) error { return err }

// A header may announce a frame up to the limit and then send little or
// nothing: the reader's memory follows the bytes that arrive, not the
// announced length (conn's multiplexed readers use a 1 GiB limit).
func TestReaderAllocatesWhatArrives(t *testing.T) {
	for _, sent := range []int{0, 1000, 100 << 10} {
		in := append(AppendHeader(nil, Header{Length: MaxMaxFrame, Type: TypeResult, ID: 1}), bytes.Repeat([]byte{'x'}, sent)...)
		var err error
		n := allocated(func() {
			r := NewReader(bytes.NewReader(in), 4096, MaxMaxFrame)
			_, _, err = r.Next()
		})
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("sent %d of %d: got %v, want io.ErrUnexpectedEOF", sent, MaxMaxFrame, err)
		}
		if bound := allocBound(len(in)); n > bound {
			t.Errorf("a 1 GiB header and %d bytes allocated %d (bound %d)", sent, n, bound)
		}
	}
}

// Large frames of every size around the growth steps arrive whole, and
// the reused buffer does not leak one frame into the next.
func TestReaderLargeFrames(t *testing.T) {
	var in []byte
	sizes := []int{4097, 8192, 8193, 16384, 20000, 16385, 70000, 5000}
	for i, n := range sizes {
		in = AppendFrame(in, TypeData, 0, uint64(i+1), bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	r := NewReader(bytes.NewReader(in), 4096, 1<<20)
	for i, n := range sizes {
		h, p, err := r.Next()
		if err != nil || h.ID != uint64(i+1) || !bytes.Equal(p, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("frame %d (%d bytes): %v, %d bytes", i, n, err, len(p))
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// ParseMetadata sizes its result by the count only after checking the
// count against the bytes (each pair takes at least two).
func TestParseMetadataCountBound(t *testing.T) {
	b := binary.AppendUvarint(nil, 1<<40)
	b = append(b, make([]byte, 100)...)
	var err error
	n := allocated(func() { _, err = ParseMetadata(nil, b) })
	if err == nil || !strings.Contains(err.Error(), "exceeds what 106 bytes can hold") {
		t.Fatalf("got %v", err)
	}
	if n > allocBound(len(b)) {
		t.Fatalf("allocated %d for a refused count", n)
	}
	md := []MD{{"a", "1"}, {"bb", "22"}, {"", ""}}
	got, err := ParseMetadata(nil, AppendMetadata(nil, md))
	if err != nil || len(got) != 3 || got[1] != md[1] || got[2] != md[2] {
		t.Fatalf("round trip: %v %v", got, err)
	}
}

// TestPad checks that AppendPad rounds a write up to the size asked (never
// below a header), that the reader returns the PAD frame like any other, and
// that CheckPad refuses a non-zero byte and says where.
func TestPad(t *testing.T) {
	for _, size := range []int{0, 10, HeaderSize, 128, 4096} {
		b := AppendPad(nil, size)
		if want := max(size, HeaderSize); len(b) != want {
			t.Fatalf("AppendPad(nil, %d): %d bytes, want %d", size, len(b), want)
		}
		h, err := ParseHeader(b, 1<<20)
		if err != nil || h.Type != TypePad || int(h.Length) != len(b)-HeaderSize {
			t.Fatalf("AppendPad(nil, %d): header %+v, %v", size, h, err)
		}
		if err := CheckPad(b[HeaderSize:]); err != nil {
			t.Fatalf("CheckPad: %v", err)
		}
	}
	p := make([]byte, 40)
	p[33] = 7
	err := CheckPad(p)
	var we *Error
	if !errors.As(err, &we) || we.Offset != 33 || we.Frame != TypePad {
		t.Fatalf("CheckPad with a non-zero byte: %v, want a *wire.Error at offset 33", err)
	}
	if TypePad.String() != "PAD" {
		t.Fatalf("TypePad.String() = %q", TypePad.String())
	}
}

// Rebase moves every slice of a parsed CALL to a copy of its payload,
// as parsing the copy would.
func TestCallRebase(t *testing.T) {
	for _, f := range []*CallFrame{
		{ID: 1, Function: "f"},
		{ID: 3, Function: "echo", Timeout: time.Second, Metadata: []MD{{"k", "v"}, {"traceparent", "00-x"}}},
		{ID: 5, Function: "m", Target: &Target{Kind: TargetAnswer, ID: 3, Path: AppendPath(nil, []PathSegment{{Key: "a"}})},
			Promises: []PromiseRef{{ID: 1}}, Caps: []CapDescriptor{{Kind: CapSenderHosted, ID: 7}}},
	} {
		b, at := AppendCall(nil, f)
		b = append(b, 0x91, 0x01)
		EndFrame(b, at)
		h, err := ParseHeader(b[:HeaderSize], 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		p := b[HeaderSize:]
		c, err := ParseCall(h.Flags, p)
		if err != nil {
			t.Fatal(err)
		}
		q := append([]byte(nil), p...)
		want, _ := ParseCall(h.Flags, q)
		c.Rebase(p, q)
		for i := range p {
			p[i] = 0xff // the old payload is gone: nothing may still point into it
		}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("%s: rebased %+v, want %+v", f.Function, c, want)
		}
	}
}
