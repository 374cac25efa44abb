package cluster

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	m := meta{
		rpcAddrs: []string{"tcp://10.0.0.1:7000", "quic://10.0.0.1:7001"},
		tags:     map[string]string{"role": "worker", "zone": "eu-1", "gpu": ""},
		load:     12.5,
		leaving:  true,
	}
	b, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.rpcAddrs, m.rpcAddrs) || !maps.Equal(got.tags, m.tags) || got.load != m.load || !got.leaving {
		t.Fatalf("round trip: %+v, want %+v", got, m)
	}
	// Compact: the header, two addresses and three tags in well under
	// memberlist's 512 bytes.
	if len(b) > 90 {
		t.Fatalf("encoding is %d bytes", len(b))
	}
}

func TestMetaLimits(t *testing.T) {
	many := make(map[string]string)
	for i := range metaMaxTags + 1 {
		many[strings.Repeat("k", i+1)] = ""
	}
	for name, m := range map[string]meta{
		"too many tags":  {rpcAddrs: []string{"a"}, tags: many},
		"too many addrs": {rpcAddrs: slices.Repeat([]string{"a"}, metaMaxAddrs+1)},
		"too big":        {rpcAddrs: []string{"a"}, tags: map[string]string{"k": strings.Repeat("v", 500)}},
	} {
		if _, err := encodeMeta(m); !errors.Is(err, ErrMetaTooLarge) {
			t.Errorf("%s: %v, want ErrMetaTooLarge", name, err)
		}
	}
}

func TestMetaDecodeErrors(t *testing.T) {
	valid, err := encodeMeta(meta{rpcAddrs: []string{"tcp://a:1"}, tags: map[string]string{"a": "1", "b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated header"},
		{"version", mut(func(b []byte) []byte { b[0] = 2; return b }), "at byte 0: unsupported version 2"},
		{"flags", mut(func(b []byte) []byte { b[1] = 0x80; return b }), "unknown flags"},
		{"nan load", mut(func(b []byte) []byte { copy(b[2:], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1}); return b }), "not a finite number"},
		{"addr count", mut(func(b []byte) []byte { b[10] = 15; return b }), "at byte 10: 15 RPC addresses cannot fit"},
		{"addr length", mut(func(b []byte) []byte { b[11] = 100; return b }), "RPC address 1 length 100 exceeds"},
		{"unsorted tags", append(valid[:len(valid)-9:len(valid)-9], 2, 1, 'b', 1, '2', 1, 'a', 1, '1'), "not after"},
		{"bad tag key", append(valid[:len(valid)-9:len(valid)-9], 1, 1, '=', 0), "contains '='"},
		{"trailing", append(bytes.Clone(valid), 0), "1 trailing bytes"},
		{"oversized", make([]byte, metaMaxSize+1), "limit 512"},
		{"bad varint", append(valid[:10:10], 0xff), "bad or truncated length"},
	}
	for _, c := range cases {
		_, err := decodeMeta(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

// FuzzDecodeMeta: decoding never panics, never accepts what it cannot
// re-encode, and an accepted blob re-encodes to the same bytes (the
// encoding is canonical).
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []meta{
		{rpcAddrs: []string{"tcp://127.0.0.1:7000"}},
		{rpcAddrs: []string{"a", "b"}, tags: map[string]string{"role": "worker", "zone": "a"}, load: 3, leaving: true},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, again)
		}
	})
}
