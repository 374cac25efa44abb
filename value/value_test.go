package value

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/shamaton/msgpack/v2"
)

type point struct {
	X, Y int
	Tag  string
}

func roundTrip[T any](t *testing.T, v T) {
	t.Helper()
	c := For[T]()
	b, err := c.Append(nil, v)
	if err != nil {
		t.Fatalf("%T: encode: %v", v, err)
	}
	// Our encoding must be what a standard msgpack library reads.
	var ref T
	if err := msgpack.Unmarshal(b, &ref); err != nil || !reflect.DeepEqual(ref, v) {
		t.Fatalf("%T: reference decoder read %v (%v), want %v", v, ref, err, v)
	}
	r := NewReader(b)
	got, err := c.Decode(&r)
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("%T: got %v (%v), want %v", v, got, err, v)
	}
	if r.Offset() != len(b) {
		t.Fatalf("%T: consumed %d of %d bytes", v, r.Offset(), len(b))
	}
}

// ownRoundTrip is roundTrip without the reference decoder, for encodings
// it does not share (promoted embedded fields; it decodes times as local).
func ownRoundTrip[T any](t *testing.T, v T) {
	t.Helper()
	b, err := For[T]().Append(nil, v)
	if err != nil {
		t.Fatalf("%T: encode: %v", v, err)
	}
	r := NewReader(b)
	got, err := For[T]().Decode(&r)
	if err != nil || !reflect.DeepEqual(got, v) || r.Offset() != len(b) {
		t.Fatalf("%T: got %v (%v), want %v", v, got, err, v)
	}
}

func TestRoundTrips(t *testing.T) {
	for _, v := range []int{0, 1, 127, 128, 255, 256, 65535, 65536, -1, -32, -33, -128, -129, -32768, -32769, math.MaxInt64, math.MinInt64, 1 << 40} {
		roundTrip(t, v)
	}
	roundTrip(t, uint64(math.MaxUint64))
	roundTrip(t, int32(-5))
	roundTrip(t, uint32(7))
	roundTrip(t, 3.5)
	roundTrip(t, true)
	for _, n := range []int{0, 31, 32, 255, 256, 65536} {
		roundTrip(t, strings.Repeat("x", n))
		roundTrip(t, bytes.Repeat([]byte{1}, n+1))
	}
	roundTrip(t, point{1, -2, "p"})
	roundTrip(t, []string{"a", "b"})
	roundTrip(t, map[string]int{"a": 1})
}

func TestTypeMismatchNamesTypeAndOffset(t *testing.T) {
	b := AppendString(nil, "five")
	r := NewReader(b)
	_, err := For[int]().Decode(&r)
	if err == nil || !strings.Contains(err.Error(), "expected int, got string (at byte 0)") {
		t.Fatalf("got %v", err)
	}
	r = NewReader(AppendInt(nil, 3))
	_, err = For[point]().Decode(&r)
	if err == nil || !strings.Contains(err.Error(), "expected value.point") {
		t.Fatalf("got %v", err)
	}
	r = NewReader(AppendInt(nil, 1<<40))
	if _, err := For[int32]().Decode(&r); err == nil || !strings.Contains(err.Error(), "overflows int32") {
		t.Fatalf("got %v", err)
	}
}

func TestReflectiveMismatchIsAnError(t *testing.T) {
	r := NewReader(AppendString(nil, "abc"))
	_, err := For[[]int]().Decode(&r)
	if err == nil || !strings.Contains(err.Error(), "expected []int, got string (at byte 0)") {
		t.Fatalf("got %v", err)
	}
}

func TestIntegralFloatsReadAsInts(t *testing.T) {
	r := NewReader(AppendFloat64(nil, 4))
	if n, err := For[int]().Decode(&r); err != nil || n != 4 {
		t.Fatalf("got %d %v", n, err)
	}
	r = NewReader(AppendFloat64(nil, 4.5))
	if _, err := For[int]().Decode(&r); err == nil {
		t.Fatal("4.5 read as an int")
	}
}

func TestLimitsRefuseBeforeAllocating(t *testing.T) {
	// An array header claiming 2^32-1 elements with nothing behind it.
	b := []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	r := NewReader(b)
	if _, err := r.ReadAny(); err == nil || !strings.Contains(err.Error(), "exceeds limit") {
		t.Fatalf("got %v", err)
	}
	b = []byte{0xdc, 0x00, 0x10, 1, 2}
	r = NewReader(b)
	if _, err := r.ReadAny(); err == nil || !strings.Contains(err.Error(), "cannot fit") {
		t.Fatalf("got %v", err)
	}
	deep := bytes.Repeat([]byte{0x91}, 100)
	deep = append(deep, 1)
	r = NewReader(deep)
	if _, err := r.ReadAny(); err == nil || !strings.Contains(err.Error(), "nesting deeper") {
		t.Fatalf("got %v", err)
	}
}

func TestJSONBridge(t *testing.T) {
	d := json.NewDecoder(strings.NewReader(`{"a":[1,-2,3.5,"x",true,null,18446744073709551615]}`))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := AppendAny(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	got, err := r.ReadAny()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": []any{int64(1), int64(-2), 3.5, "x", true, nil, uint64(math.MaxUint64)}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v", got)
	}
}

func TestFastPathAllocations(t *testing.T) {
	c := For[[]byte]()
	in := bytes.Repeat([]byte{7}, 64)
	buf := make([]byte, 0, 256)
	var out []byte
	n := testing.AllocsPerRun(100, func() {
		b, _ := c.Append(buf[:0], in)
		r := NewReader(b)
		out, _ = c.Decode(&r)
	})
	if n != 1 || len(out) != 64 { // the decoded slice itself
		t.Fatalf("%v allocations per []byte round trip, want 1", n)
	}
	ci := For[int]()
	x, y := 12345, 0
	n = testing.AllocsPerRun(100, func() {
		b, _ := ci.Append(buf[:0], x)
		r := NewReader(b)
		y, _ = ci.Decode(&r)
	})
	if n != 0 || y != x {
		t.Fatalf("%v allocations per int round trip, want 0", n)
	}
}

func TestTypeNames(t *testing.T) {
	if For[[]byte]().TypeName() != "bytes" || For[int]().TypeName() != "int" || For[point]().TypeName() != "value.point" || For[any]().TypeName() != "any" {
		t.Fatal("bad type names")
	}
}

// A small input cannot make the reflective decoder allocate a huge slice.
func TestReflectiveDecodeBudget(t *testing.T) {
	type big struct{ A [1024]byte }
	b := AppendArrayHeader(nil, 1<<20)
	for i := 0; i < 1<<20; i++ {
		b = AppendNil(b)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := NewReader(b)
	_, err := For[[]big]().Decode(&r)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "would allocate more than") {
		t.Fatalf("got %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Fatalf("allocated %d bytes refusing a 1 MiB input", n)
	}
}

func TestRewriteExt(t *testing.T) {
	in := AppendArrayHeader(nil, 3)
	in = AppendExt(in, 9, []byte{1})
	in = AppendMapHeader(in, 1)
	in = AppendString(in, "k")
	in = AppendExt(in, 9, []byte{2})
	in = AppendExt(in, 5, []byte{3}) // another type: kept
	out, err := RewriteExt([]byte("pre"), in, func(t int8, data []byte) ([]byte, error) {
		if t != 9 {
			return nil, nil
		}
		return AppendExt(nil, 9, []byte{data[0] + 10, 0}), nil
	})
	if err != nil || string(out[:3]) != "pre" {
		t.Fatalf("%x %v", out, err)
	}
	var seen []byte
	Walk(out[3:], func(t int8) { seen = append(seen, byte(t)) })
	if string(seen) != "\x09\x09\x05" {
		t.Fatalf("exts after rewrite: %v", seen)
	}
	v, err := Select(out[3:], []any{1, "k"})
	if err != nil || !bytes.Equal(v, AppendExt(nil, 9, []byte{12, 0})) {
		t.Fatalf("rewritten value %x %v", v, err)
	}
	for _, bad := range [][]byte{{0x92, 0x01}, {0xd4, 9}, append(AppendNil(nil), 0xc0)} {
		if _, err := RewriteExt(nil, bad, func(int8, []byte) ([]byte, error) { return nil, nil }); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
	if _, err := RewriteExt(nil, in, func(int8, []byte) ([]byte, error) { return nil, errors.New("no") }); err == nil {
		t.Error("the callback's error was lost")
	}
}
