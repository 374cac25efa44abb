package arborproto_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/arbor-rpc/arbor/arborproto"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/value"
)

var featureType = (&pb.Feature{}).ProtoReflect().Type()

func normal(t *testing.T, mt protoreflect.MessageType, v []byte) []byte {
	t.Helper()
	out, err := arborproto.Normalize(mt, v)
	if err != nil {
		t.Fatalf("Normalize(%x): %v", v, err)
	}
	return out
}

func bin(b []byte) []byte { return value.AppendBytes(nil, b) }

// point encodes a Point's fields in the order given.
func point(fields ...[2]int64) []byte {
	var b []byte
	for _, f := range fields {
		b = protowire.AppendTag(b, protowire.Number(f[0]), protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(f[1]))
	}
	return b
}

// Every form one Feature can arrive in normalises to the bytes
// AppendMessage writes for it.
func TestNormalizeForms(t *testing.T) {
	f := &pb.Feature{Name: "n", Location: &pb.Point{Latitude: 7, Longitude: -3}}
	want, err := arborproto.AppendMessage(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	// Binary the way another encoder may write it: location before name,
	// location split in two parts (merged), name given twice (last wins).
	var odd []byte
	odd = protowire.AppendTag(odd, 2, protowire.BytesType)
	odd = protowire.AppendBytes(odd, point([2]int64{2, -3}))
	odd = protowire.AppendTag(odd, 1, protowire.BytesType)
	odd = protowire.AppendString(odd, "old")
	odd = protowire.AppendTag(odd, 2, protowire.BytesType)
	odd = protowire.AppendBytes(odd, point([2]int64{1, 7}))
	odd = protowire.AppendTag(odd, 1, protowire.BytesType)
	odd = protowire.AppendString(odd, "n")
	js, _ := value.AppendAny(nil, map[string]any{"location": map[string]any{"longitude": int64(-3), "latitude": "7"}, "name": "n"})
	for name, v := range map[string][]byte{
		"reordered binary": bin(odd),
		"binary in a str":  value.AppendString(nil, string(want[2:])),
		"protojson map":    js,
	} {
		if got := normal(t, featureType, v); !bytes.Equal(got, want) {
			t.Errorf("%s: normalised to %x, want %x", name, got, want)
		}
	}
	// Normal already: the same slice back, no copy.
	if got := normal(t, featureType, want); &got[0] != &want[0] {
		t.Errorf("a normal value was copied")
	}
}

func TestNormalizeNilIsEmpty(t *testing.T) {
	empty := []byte{0xc4, 0x00}
	for _, v := range [][]byte{{0xc0}, empty, {0x80}, {0xa0}} { // nil, empty bin, {}, ""
		if got := normal(t, featureType, v); !bytes.Equal(got, empty) {
			t.Errorf("%x normalised to %x, want the empty bin", v, got)
		}
	}
	// A message whose fields are all defaults is the empty message too.
	zero := bin(point([2]int64{1, 0}, [2]int64{2, 0}))
	if got := normal(t, (&pb.Point{}).ProtoReflect().Type(), zero); !bytes.Equal(got, empty) {
		t.Errorf("explicit zeros normalised to %x, want the empty bin", got)
	}
}

// Map entries come out sorted by key whatever order they came in.
func TestNormalizeMapOrder(t *testing.T) {
	entry := func(k string) []byte {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendBytes(e, nil) // an empty Value
		var f []byte
		f = protowire.AppendTag(f, 1, protowire.BytesType)
		return protowire.AppendBytes(f, e)
	}
	st := (&structpb.Struct{}).ProtoReflect().Type()
	ab := normal(t, st, bin(append(entry("a"), entry("b")...)))
	ba := normal(t, st, bin(append(entry("b"), entry("a")...)))
	if !bytes.Equal(ab, ba) {
		t.Fatalf("map order changes the normal form: %x vs %x", ab, ba)
	}
}

// Unknown fields are kept byte for byte, after the known ones: not
// reordered among themselves, so their order shows in the normal form.
func TestNormalizeUnknownFieldsKept(t *testing.T) {
	pt := (&pb.Point{}).ProtoReflect().Type()
	u1, u2 := point([2]int64{9, 1}), point([2]int64{10, 2})
	a := normal(t, pt, bin(append(append(append([]byte{}, u1...), u2...), point([2]int64{1, 5})...)))
	want := bin(append(append(point([2]int64{1, 5}), u1...), u2...))
	if !bytes.Equal(a, want) {
		t.Fatalf("normalised %x, want %x (known field first, unknown ones as they came)", a, want)
	}
	b := normal(t, pt, bin(append(append(point([2]int64{1, 5}), u2...), u1...)))
	if bytes.Equal(a, b) {
		t.Fatalf("unknown fields in another order gave the same bytes; the doc says they are kept as they came")
	}
}

func TestNormalizeErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		v    []byte
		want string
	}{
		"truncated":      {bin([]byte{0x08}), "routeguide.Feature"},
		"trailing":       {[]byte{0xc0, 0xc0}, "1 byte(s) after the value (at byte 1)"},
		"an integer":     {[]byte{0x05}, "expected routeguide.Feature"},
		"unknown json":   {mustAny(map[string]any{"altitude": int64(1)}), "altitude"},
		"wrong json":     {mustAny(map[string]any{"name": int64(1)}), "name"},
		"no value":       {nil, "routeguide.Feature"},
		"bad utf8 field": {bin(append(protowire.AppendTag(nil, 1, protowire.BytesType), 1, 0xff)), "UTF-8"},
	} {
		_, err := arborproto.Normalize(featureType, tc.v)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, tc.want)
		}
	}
}

func mustAny(v any) []byte {
	b, err := value.AppendAny(nil, v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzNormalize feeds arbitrary msgpack to Normalize: no panic; what it
// accepts normalises to a bin that is normal (a fixed point) and decodes
// to the message the input decodes to.
func FuzzNormalize(f *testing.F) {
	ft, _ := arborproto.AppendMessage(nil, &pb.Feature{Name: "x", Location: &pb.Point{Latitude: 1, Longitude: -1}})
	f.Add(ft)
	f.Add(bin(append(point([2]int64{9, 1}), point([2]int64{1, 5})...)))
	f.Add(mustAny(map[string]any{"name": "n", "location": map[string]any{"latitude": "7"}}))
	f.Add([]byte{0xc0})
	f.Add([]byte{0xc4, 0x00})
	f.Add([]byte{0xc4, 0x02, 0x08, 0xff})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa4, 'n', 'a', 'm', 'e', 0x05})
	f.Fuzz(func(t *testing.T, v []byte) {
		out, err := arborproto.Normalize(featureType, v)
		if err != nil {
			return
		}
		if len(out) == 0 || out[0] < 0xc4 || out[0] > 0xc6 {
			t.Fatalf("normal form %x is not a bin", out)
		}
		again, err := arborproto.Normalize(featureType, out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("normal form %x is not normal: %x, %v", out, again, err)
		}
		var m1, m2 pb.Feature
		r1, r2 := value.NewReader(v), value.NewReader(out)
		if err := arborproto.ReadMessage(&r1, &m1); err != nil {
			t.Fatalf("input normalised but does not read: %v", err)
		}
		if err := arborproto.ReadMessage(&r2, &m2); err != nil || !proto.Equal(&m1, &m2) {
			t.Fatalf("normal form reads as another message: %v", err)
		}
	})
}

// BenchmarkNormalize: what keying a message argument costs a tree, for
// a value already normal (from Go) and one given as protojson (JSON).
func BenchmarkNormalize(b *testing.B) {
	f := &pb.Feature{Name: "Patriots Path, Mendham, NJ 07945, USA", Location: &pb.Point{Latitude: 407838351, Longitude: -746143763}}
	normalForm, _ := arborproto.AppendMessage(nil, f)
	js := mustAny(map[string]any{"name": f.GetName(), "location": map[string]any{"latitude": int64(407838351), "longitude": int64(-746143763)}})
	for _, bc := range []struct {
		name string
		v    []byte
	}{{"binary", normalForm}, {"protojson", js}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := arborproto.Normalize(featureType, bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
