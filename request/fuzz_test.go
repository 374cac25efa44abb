package request

import (
	"bytes"
	"os"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
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
	} {
		f.Add([]byte(s))
	}
}

// FuzzParseJSON: the reader never panics, fails only with InvalidArgument,
// and what it accepts survives a write and a re-read with the same key, in
// JSON and in msgpack.
func FuzzParseJSON(f *testing.F) {
	jsonSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseJSON(data, Limits{})
		if err != nil {
			if status.CodeOf(err) != status.InvalidArgument {
				t.Fatalf("error code %v: %v", status.CodeOf(err), err)
			}
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

// FuzzParseMsgpack: the wire decoder never panics, fails only with
// InvalidArgument, and re-encodes what it accepts to the same key.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		n, used, err := ParseMsgpack(data, Limits{})
		if k, id, nargs, kused, ok := MsgpackKey(data, Limits{}); ok {
			if err != nil {
				t.Fatalf("MsgpackKey accepted what ParseMsgpack refuses: %v", err)
			}
			if k != n.Key() || string(id) != n.ID || nargs != len(n.Args) || kused != used {
				t.Fatalf("MsgpackKey disagrees with ParseMsgpack")
			}
		}
		if err != nil {
			if status.CodeOf(err) != status.InvalidArgument {
				t.Fatalf("error code %v: %v", status.CodeOf(err), err)
			}
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

// FuzzCanonical: canonicalization never panics, is idempotent, and keeps
// the JSON reading of the value.
func FuzzCanonical(f *testing.F) {
	for _, s := range [][]byte{{0x05}, {0xd0, 0x05}, {0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x02}, {0x92, 0xcd, 0, 1, 0xc4, 1, 'x'}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Canonical(data)
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
