package value

import (
	"testing"
)

// FuzzReadAny decodes arbitrary bytes as msgpack: no panic, no allocation
// past the limits, and whatever decodes re-encodes to something that decodes
// to the same value.
func FuzzReadAny(f *testing.F) {
	seed, _ := AppendAny(nil, map[string]any{"a": []any{int64(1), "x", []byte{1}, 2.5, nil, true}})
	f.Add(seed)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{0xd4, 1, 2})
	f.Add([]byte{0x91, 0x91, 0x91, 0xc0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(data)
		v, err := r.ReadAny()
		if err != nil {
			return
		}
		b, err := AppendAny(nil, v)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", v, err)
		}
		r2 := NewReader(b)
		v2, err := r2.ReadAny()
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		b2, _ := AppendAny(nil, v2)
		if len(b2) != len(b) {
			t.Fatalf("not stable: %x vs %x", b, b2)
		}
		r3 := NewReader(data)
		if _, err := r3.Skip(); err != nil {
			t.Fatalf("ReadAny accepted what Skip refuses: %v", err)
		}
	})
}
