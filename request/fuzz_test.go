package request

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

func jsonSeeds(f *testing.F) {
	b, err := os.ReadFile("testdata/seed_example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	for _, s := range []string{
		`{"uuid":"f","args":{}}`,
		`{"args":{"tuple_element0":{"as_file":false,"size":3,"blob":"YWJj"}},"uuid":"f+mem"}`,
		`{"uuid":"f","args":[{"uuid":"normalization<int,func>","args":{"tuple_element0":1}},[1,2.5,-3,null,true],{"value0":{"k":"v"}}],"base_millis":1,"max_attempts":2}`,
		`{"uuid":"f","args":{"tuple_element0":{"uuid":"g","title":"t","plain_uuid":"g","args":{"tuple_element0":"x"}}}}`,
		`{"uuid":"f","args":{"tuple_element1":1}}`,
		`{"uuid":"f","args":{"tuple_element0":{"as_file":false,"size":9,"blob":"YWJj"}}}`,
		`[[[[[[[[`,
		nested(70),
		`{"uuid":"f","args":[` + strings.Repeat("[", 300),
		"{\"uuid\":\"f\xff\",\"args\":{}}",
		`{"uuid":"f","title":"\ud800\u00e9\"","args":{"tuple_element0":{"b":1,"a":{"\u0061":2,"b":[]}}},"max_attempts":9223372036854775807}`,
		`{"uuid":"f","args":[{"a":1,"\u0061":2}]}`,
		`{"uuid":"f","args":{},"base_millis":99999999999999999999}`,
		`{"uuid":"f","args":[` + strings.Repeat("9", 400) + `, -0, 1E+2, 0.5e-3]}`,
	} {
		f.Add([]byte(s))
	}
	// 64 requests deep with 8000 arguments at the bottom: the old reader
	// built a 1.3 KB path string for each.
	f.Add(deepWideJSON(8 << 10))
}

// checkAlloc fails t if decoding n bytes allocated more than allocBound.
func checkAlloc(t *testing.T, what string, n int, got uint64) {
	t.Helper()
	if bound := allocBound(n); got > bound {
		t.Fatalf("%s of %d bytes allocated %d (bound %d)", what, n, got, bound)
	}
}

// decodeErr fails t unless err is one a decoder may return.
func decodeErr(t *testing.T, err error) {
	t.Helper()
	if c := status.CodeOf(err); c != status.InvalidArgument && c != status.ResourceExhausted {
		t.Fatalf("error code %v: %v", c, err)
	}
	if len(err.Error()) > 2000 {
		t.Fatalf("error message of %d bytes", len(err.Error()))
	}
}

// FuzzParseJSON: the reader never panics, allocates a small multiple of
// its input at most, fails only with InvalidArgument (ResourceExhausted
// over the budget) and a short message, and what it accepts survives a
// write and a re-read with the same key, in JSON and in msgpack.
func FuzzParseJSON(f *testing.F) {
	jsonSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var n *Node
		var err error
		checkAlloc(t, "ParseJSON", len(data), allocated(func() { n, err = ParseJSON(data, Limits{}) }))
		if err != nil {
			decodeErr(t, err)
			return
		}
		if err := n.Validate(Limits{}); err != nil {
			t.Fatalf("parsed tree fails Validate: %v", err)
		}
		key := n.Key()
		out, err := n.MarshalJSON()
		if err != nil {
			// Only values without a JSON form (NaN cannot come from JSON)
			// could fail; nothing parsed from JSON should.
			t.Fatalf("MarshalJSON: %v", err)
		}
		m, err := ParseJSON(out, Limits{})
		if err != nil {
			t.Fatalf("re-reading %s: %v", out, err)
		}
		if m.Key() != key {
			t.Fatalf("key changed through JSON: %s", out)
		}
		b, err := AppendMsgpack(nil, n)
		if err != nil {
			t.Fatalf("AppendMsgpack: %v", err)
		}
		m2, used, err := ParseMsgpack(b, Limits{})
		if err != nil || used != len(b) || m2.Key() != key {
			t.Fatalf("msgpack round trip: %v", err)
		}
	})
}

// FuzzParseMsgpack: the wire decoder never panics, allocates a small
// multiple of its input at most, fails only with InvalidArgument
// (ResourceExhausted over the budget), and re-encodes what it accepts to
// the same key; MsgpackKey agrees with it.
func FuzzParseMsgpack(f *testing.F) {
	for _, n := range []*Node{
		New("f"),
		New("rq_post_iss_object+full", "123", "string", New("uuid_100_2", map[string]any{"value0": "payload"})),
		New("f+mem_vb", []any{1, 2.5, nil, true}, []byte{0, 1}, New("g", New("h", -1))),
	} {
		b, err := AppendMsgpack(nil, n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x93, 0xa1, 'f', 0xa0, 0x91, 0x92, 0x00, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0x95, 0xa1, 'f', 0xa0, 0x90, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x93, 0xa2, 'f', 0xff, 0xa0, 0x90})
	// Nested requests each announcing the bytes left, or a third of them,
	// as arguments: the old reader allocated 2000 and 680 times the input.
	f.Add(hostileMsgpack(16<<10, 65, func(left int) int { return left }))
	f.Add(hostileMsgpack(16<<10, 65, func(left int) int { return left / minArgBytes }))
	f.Add(wideMsgpack(8<<10, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		var n *Node
		var used int
		var err error
		checkAlloc(t, "ParseMsgpack", len(data), allocated(func() { n, used, err = ParseMsgpack(data, Limits{}) }))
		var k Key
		var id []byte
		var nargs, kused int
		var ok bool
		checkAlloc(t, "MsgpackKey", len(data), allocated(func() { k, id, nargs, kused, ok = MsgpackKey(data, Limits{}) }))
		if ok {
			if err != nil {
				t.Fatalf("MsgpackKey accepted what ParseMsgpack refuses: %v", err)
			}
			if k != n.Key() || string(id) != n.ID || nargs != len(n.Args) || kused != used {
				t.Fatalf("MsgpackKey disagrees with ParseMsgpack")
			}
		}
		if err != nil {
			decodeErr(t, err)
			return
		}
		if used > len(data) {
			t.Fatalf("used %d of %d bytes", used, len(data))
		}
		if err := n.Validate(Limits{}); err != nil {
			t.Fatalf("parsed tree fails Validate: %v", err)
		}
		b, err := AppendMsgpack(nil, n)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := ParseMsgpack(b, Limits{})
		if err != nil || m.Key() != n.Key() {
			t.Fatalf("re-encoding: %v", err)
		}
		if len(b) < largeKeyInput {
			if k, _, _, kused, ok := MsgpackKey(b, Limits{}); !ok || k != n.Key() || kused != len(b) {
				t.Fatalf("MsgpackKey on the canonical encoding: ok %v", ok)
			}
		}
	})
}

// FuzzCanonical: canonicalization never panics, allocates a small
// multiple of its input at most, is idempotent, and keeps the JSON
// reading of the value.
func FuzzCanonical(f *testing.F) {
	for _, s := range [][]byte{{0x05}, {0xd0, 0x05}, {0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x02}, {0x92, 0xcd, 0, 1, 0xc4, 1, 'x'},
		{0x82, 0xa1, 'a', 0x01, 0xd9, 1, 'a', 0x02}, // duplicate key once canonical
	} {
		f.Add(s)
	}
	// Unsorted maps 63 deep around a 16 KiB string: the old encoder
	// copied the string into a new buffer at every level (80 times the
	// input in all).
	f.Add(nestedUnsortedMaps(63, 16<<10))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c []byte
		var err error
		// The output and the reordering scratch are each no larger than
		// the input; the entries of one map being sorted take 32 bytes
		// per entry of at least 2 bytes.
		if n := allocated(func() { c, err = Canonical(data) }); n > 32*uint64(len(data))+64<<10 {
			t.Fatalf("Canonical of %d bytes allocated %d", len(data), n)
		}
		if err != nil {
			return
		}
		again, err := Canonical(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("not idempotent: %x → %x → %x (%v)", data, c, again, err)
		}
		if len(c) > 0 && len(data) > 0 && bytes.Equal(c, data) && &c[0] != &data[0] {
			t.Fatal("unchanged value was copied")
		}
		j1, err1 := AppendValueJSON(nil, data)
		j2, err2 := AppendValueJSON(nil, c)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("JSON writability changed: %v vs %v", err1, err2)
		}
		_, _ = j1, j2 // map order may differ; equality is not required
	})
}

// FuzzAppendValueJSON: writing any msgpack as JSON never panics, and what
// it writes (and allocates) stays a small multiple of the input; what it
// writes is JSON that ParseJSON reads as a value.
func FuzzAppendValueJSON(f *testing.F) {
	for _, v := range []any{nil, true, -5, 1.5, float32(2), "a\"b\x01", []byte{0, 1}, []any{1, "x", nil}, map[string]any{"value0": []any{}}} {
		b, err := value.AppendAny(nil, v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x81, 0x07, 0xc3})                   // {7: true}
	f.Add([]byte{0x81, 0x81, 0x81, 0xc0, 0xc0, 0xc0}) // a map key inside a map key
	// Map keys nested 20 deep in map keys: each level quoted the one
	// inside again, and the old writer's output doubled with every level.
	deep := []byte{0xc0}
	for range 20 {
		deep = append(append([]byte{0x81}, deep...), 0xc0)
	}
	f.Add(deep)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out []byte
		var err error
		checkAlloc(t, "AppendValueJSON", len(data), allocated(func() { out, err = AppendValueJSON(nil, data) }))
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q from % x", out, data)
		}
		if _, err := ParseJSON([]byte(`{"uuid":"f","args":[`+string(out)+`]}`), Limits{}); err != nil && status.CodeOf(err) != status.InvalidArgument {
			t.Fatalf("reading it back: %v", err)
		}
	})
}

// FuzzParsePath: ParsePath never panics, allocates in proportion to its
// input, and inverts FormatPath on what it accepts.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"", "request", "args.tuple_element0", "args.tuple_element2.args.tuple_element10", "args.", "args.tuple_element01", strings.Repeat("args.tuple_element1.", 30) + "args.tuple_element0", "....."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var idx []int
		var err error
		checkAlloc(t, "ParsePath", len(s), allocated(func() { idx, err = ParsePath(s) }))
		if err != nil {
			if len(err.Error()) > 600 {
				t.Fatalf("message of %d bytes", len(err.Error()))
			}
			return
		}
		if s != "" && FormatPath(idx) != s {
			t.Fatalf("FormatPath(ParsePath(%q)) = %q", s, FormatPath(idx))
		}
	})
}
