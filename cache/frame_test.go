package cache

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 13, 1024, 1 << 20} {
		k, v := key(n), value(n, n)
		b := encodeEntry(&k, v)
		if len(b) != frameHeaderSize+n {
			t.Fatalf("len %d: frame is %d bytes, want %d", n, len(b), frameHeaderSize+n)
		}
		got, err := decodeEntry(&k, b)
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("len %d: value changed", n)
		}
	}
}

func TestFrameRejects(t *testing.T) {
	k := key(1)
	good := encodeEntry(&k, []byte("a msgpack result"))
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"empty":           {},
		"short header":    good[:frameHeaderSize-1],
		"truncated value": good[:len(good)-1],
		"extra byte":      append(bytes.Clone(good), 0),
		"version":         mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"length":          mutate(func(b []byte) []byte { b[8]++; return b }),
		"checksum":        mutate(func(b []byte) []byte { b[9] ^= 0x80; return b }),
		"value bit":       mutate(func(b []byte) []byte { b[frameHeaderSize+3] ^= 1; return b }),
		"huge length":     mutate(func(b []byte) []byte { b[1] = 0xff; return b }),
	}
	for name, b := range cases {
		if v, err := decodeEntry(&k, b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got (%q, %v), want ErrCorrupt", name, v, err)
		}
	}
	if _, err := decodeEntry(ptr(key(2)), good); !errors.Is(err, ErrCorrupt) {
		t.Errorf("entry under another key: got %v, want ErrCorrupt", err)
	}
}

// FuzzDiskEntry fuzzes the entry decoder that Disk and Redis share: it must
// never panic, and whatever it accepts must be exactly what encodeEntry
// makes of the value it returns.
func FuzzDiskEntry(f *testing.F) {
	k := key(7)
	f.Add(k[:], encodeEntry(&k, nil))
	f.Add(k[:], encodeEntry(&k, []byte{0x93, 0x01, 0x02, 0x03}))
	f.Add(k[:], encodeEntry(&k, value(3, 300)))
	f.Add(k[:], encodeEntry(&k, value(3, 300))[:100])
	f.Add(k[:], []byte{})
	f.Add(k[:], []byte{1})
	f.Add(k[:], []byte{frameVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Add([]byte("short key"), encodeEntry(&k, []byte("x")))
	f.Fuzz(func(t *testing.T, kb, b []byte) {
		var k Key
		copy(k[:], kb)
		v, err := decodeEntry(&k, b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if v != nil {
				t.Fatalf("error with a value")
			}
			// Whatever b was, its value framed afresh decodes.
			if len(b) >= frameHeaderSize {
				re := encodeEntry(&k, b[frameHeaderSize:])
				if got, err := decodeEntry(&k, re); err != nil || !bytes.Equal(got, b[frameHeaderSize:]) {
					t.Fatalf("re-encoded value does not decode: %v", err)
				}
			}
			return
		}
		if !bytes.Equal(encodeEntry(&k, v), b) {
			t.Fatalf("accepted %x, which is not the framing of its value", b)
		}
	})
}
