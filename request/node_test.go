package request

import (
	"bytes"
	"crypto/sha256"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func mathNaN() float64 { return math.NaN() }

func TestKeyAmbiguity(t *testing.T) {
	if New("f", "ab", "c").Key() == New("f", "a", "bc").Key() {
		t.Error(`("ab","c") and ("a","bc") share a key`)
	}
	if New("f", 1).Key() == New("f", 1, nil).Key() {
		t.Error("arity not in the key")
	}
	if New("f", 1).Key() == New("g", 1).Key() {
		t.Error("id not in the key")
	}
	if New("f", 1).Key() == New("f+mem", 1).Key() {
		t.Error("caching suffix not in the key")
	}
	if New("f", 1).Key() != New("f", 1).WithTitle("other").Key() {
		t.Error("title changed the key")
	}
	if New("f", int64(1)).Key() != New("f", uint8(1)).Key() {
		t.Error("integer width changed the key")
	}
	if New("f", 1).Key() == New("f", 1.0).Key() {
		t.Error("int and float share a key")
	}
	if New("f", "x").Key() == New("f", []byte("x")).Key() {
		t.Error("string and bytes share a key")
	}
	// A subrequest is not its result: key(New("f", sub)) differs from a
	// value that happens to hold the sub's key bytes.
	sub := New("g", 1)
	k := sub.Key()
	if New("f", sub).Key() == New("f", k[:]).Key() {
		t.Error("subrequest and value share a key")
	}
	// Maps: key order of construction does not matter.
	a := New("f", map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
	for range 20 {
		if New("f", map[string]any{"e": 5, "d": 4, "c": 3, "b": 2, "a": 1}).Key() != a.Key() {
			t.Fatal("map order changed the key")
		}
	}
}

func TestKeyLargeValue(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 10_000)
	n := New("f", big, New("g", big))
	// The streaming path must agree with the documented layout.
	var in []byte
	in = append(in, 1, 'N', 1, 'f', 2, 'V')
	v := mp(t, big)
	in = append(in, 0x80|byte(len(v)&0x7f), byte(len(v)>>7)) // uvarint of len(v)
	in = append(in, v...)
	gk := New("g", big).Key()
	in = append(in, 'R')
	in = append(in, gk[:]...)
	if n.Key() != sha256.Sum256(in) {
		t.Fatal("streamed key differs from the layout")
	}
}

func TestValueKey(t *testing.T) {
	if ValueKey("f+mem_vb", [][]byte{mp(t, 1), mp(t, "x")}) != New("f+mem_vb", 1, "x").Key() {
		t.Error("ValueKey differs from the key of the literal request")
	}
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in, want  []byte
		unchanged bool
	}{
		{"fixint", []byte{0x05}, []byte{0x05}, true},
		{"int8 positive", []byte{0xd0, 0x05}, []byte{0x05}, false},
		{"int64 negative", []byte{0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, []byte{0xfe}, false},
		{"uint16 small", []byte{0xcd, 0x00, 0x10}, []byte{0x10}, false},
		{"uint8 big", []byte{0xcc, 0xf0}, []byte{0xcc, 0xf0}, true},
		{"int16 -200", []byte{0xd1, 0xff, 0x38}, []byte{0xd1, 0xff, 0x38}, true},
		{"str8 short", []byte{0xd9, 0x01, 'a'}, []byte{0xa1, 'a'}, false},
		{"bin16 short", []byte{0xc5, 0x00, 0x01, 'a'}, []byte{0xc4, 0x01, 'a'}, false},
		{"array16 short", []byte{0xdc, 0x00, 0x01, 0xd0, 0x01}, []byte{0x91, 0x01}, false},
		{"float32 kept", []byte{0xca, 0x3f, 0xc0, 0, 0}, []byte{0xca, 0x3f, 0xc0, 0, 0}, true},
		{"map unsorted", []byte{0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x02}, []byte{0x82, 0xa1, 'a', 0x02, 0xa1, 'b', 0x01}, false},
		{"map sorted", []byte{0x82, 0xa1, 'a', 0x02, 0xa1, 'b', 0x01}, []byte{0x82, 0xa1, 'a', 0x02, 0xa1, 'b', 0x01}, true},
	} {
		got, err := Canonical(tc.in)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: Canonical(%x) = %x, %v; want %x", tc.name, tc.in, got, err, tc.want)
			continue
		}
		if tc.unchanged && &got[0] != &tc.in[0] {
			t.Errorf("%s: canonical input was copied", tc.name)
		}
		again, _ := Canonical(got)
		if !bytes.Equal(again, got) {
			t.Errorf("%s: not idempotent", tc.name)
		}
	}
	for _, bad := range [][]byte{
		nil,
		{0xc1},
		{0x91},
		{0x05, 0x06},
		{0xd4, 0x01, 0x02}, // fixext
		{0x82, 0xa1, 'a', 0x01, 0xd9, 1, 'a', 0x02},   // duplicate key after canonicalization
		{0xdd, 0xff, 0xff, 0xff, 0xff},                // huge array, no bytes
		{0xdb, 0x7f, 0xff, 0xff, 0xff},                // huge string
		append(bytes.Repeat([]byte{0x91}, 100), 0x01), // too deep
	} {
		if _, err := Canonical(bad); err == nil {
			t.Errorf("Canonical(%x) accepted", bad)
		}
	}
}

func TestMsgpackRoundTrip(t *testing.T) {
	n := New("rq_post_iss_object+full", "123", "string",
		New("uuid_100_2", map[string]any{"value0": "payload"}).WithTitle("make_blob_coro")).WithTitle("post_iss_object")
	n.Retry = RetryHint{BaseMillis: 10, MaxAttempts: 4}
	b, err := AppendMsgpack(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	m, used, err := ParseMsgpack(append(b, 0xc0), Limits{})
	if err != nil || used != len(b) {
		t.Fatalf("ParseMsgpack: %v (used %d of %d)", err, used, len(b))
	}
	if !reflect.DeepEqual(stripErr(m), stripErr(n)) {
		t.Errorf("round trip: %+v != %+v", m, n)
	}
	if m.Key() != n.Key() {
		t.Error("key changed")
	}
	// A non-canonical value on the wire is canonicalized on the way in.
	raw := value.AppendArrayHeader(nil, 3)
	raw = value.AppendString(raw, "f")
	raw = value.AppendString(raw, "")
	raw = value.AppendArrayHeader(raw, 1)
	raw = append(raw, 0x92, 0, 0xd3, 0, 0, 0, 0, 0, 0, 0, 7)
	m, _, err = ParseMsgpack(raw, Limits{})
	if err != nil || m.Key() != New("f", 7).Key() {
		t.Fatalf("non-canonical value: %v", err)
	}
}

func stripErr(n *Node) *Node {
	c := *n
	c.Args = append([]Arg(nil), n.Args...)
	for i, a := range c.Args {
		if a.Node != nil {
			c.Args[i].Node = stripErr(a.Node)
		}
	}
	return &c
}

func TestParseMsgpackErrors(t *testing.T) {
	good, _ := AppendMsgpack(nil, New("f", 1, New("g", 2)))
	for i := 0; i < len(good); i++ {
		if _, _, err := ParseMsgpack(good[:i], Limits{}); status.CodeOf(err) != status.InvalidArgument {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-2] = 7 // the sub's argument tag
	_, _, err := ParseMsgpack(bad, Limits{})
	if err == nil || !strings.Contains(err.Error(), "args.tuple_element1.args.tuple_element0") || !strings.Contains(err.Error(), "unknown argument tag 7") {
		t.Errorf("bad tag: %v", err)
	}
	// depth
	var deep []byte
	for range 70 {
		deep = value.AppendArrayHeader(deep, 3)
		deep = value.AppendString(deep, "f")
		deep = value.AppendString(deep, "")
		deep = value.AppendArrayHeader(deep, 1)
		deep = append(deep, 0x92, 1)
	}
	if _, _, err := ParseMsgpack(deep, Limits{}); err == nil || !strings.Contains(err.Error(), "nested deeper than 64") {
		t.Errorf("deep: %v", err)
	}
}

func TestLevelOf(t *testing.T) {
	for id, want := range map[string]Level{
		"f": None, "f+none": None, "f+mem": Mem, "f+full": Full, "f+mem_vb": MemVB, "f+full_vb": FullVB,
		"f+other": None, "a+b+mem": Mem, "+mem": Mem, "f+": None,
	} {
		if got := LevelOf(id); got != want {
			t.Errorf("LevelOf(%q) = %v, want %v", id, got, want)
		}
	}
	if !Full.UsesSecondary() || Mem.UsesSecondary() || !FullVB.ValueBased() || Full.ValueBased() || None.Cached() {
		t.Error("level predicates")
	}
}

func TestPaths(t *testing.T) {
	if got := FormatPath([]int{2, 0}); got != "args.tuple_element2.args.tuple_element0" {
		t.Errorf("FormatPath = %q", got)
	}
	var root *Path
	c := root.Child(2)
	cc := c.Child(0)
	if cc.String() != "args.tuple_element2.args.tuple_element0" || root.String() != "request" {
		t.Errorf("Path.String = %q", cc.String())
	}
	for _, s := range []string{"", "request", "args.tuple_element2", "args.tuple_element2.args.tuple_element10"} {
		idx, err := ParsePath(s)
		if err != nil || FormatPath(idx) != strings.TrimPrefix(s, "") && !(s == "" && FormatPath(idx) == "request") {
			t.Errorf("ParsePath(%q) = %v, %v", s, idx, err)
		}
	}
	for _, s := range []string{"args", "args.x", "x.tuple_element0", "args.tuple_element-1"} {
		if _, err := ParsePath(s); err == nil {
			t.Errorf("ParsePath(%q) accepted", s)
		}
	}
}

func TestNewAndValidate(t *testing.T) {
	n := New("f", 1, New("g", func() {}))
	if n.Err() == nil || n.Validate(Limits{}) == nil {
		t.Fatal("unencodable argument not reported")
	}
	if _, err := AppendMsgpack(nil, n); err == nil {
		t.Error("AppendMsgpack encoded a broken tree")
	}
	if err := New("f", (*Node)(nil)).Validate(Limits{}); err == nil {
		t.Error("nil subrequest accepted")
	}
	if err := New("").Validate(Limits{}); err == nil {
		t.Error("empty id accepted")
	}
	if err := (&Node{ID: "f", Args: []Arg{{}}}).Validate(Limits{}); err == nil || !strings.Contains(err.Error(), "args.tuple_element0") {
		t.Errorf("empty argument: %v", err)
	}
	// A cycle is caught by the depth limit, not a stack overflow.
	c := New("f", 1)
	c.Args[0] = Sub(c)
	if err := c.Validate(Limits{}); err == nil {
		t.Error("cycle accepted")
	}
	if c.Count(100) != 101 {
		t.Errorf("Count on a cycle = %d", c.Count(100))
	}
	ok := New("f", 1, "x", []byte{1}, New("g"), Sub(New("h")))
	if err := ok.Validate(Limits{}); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if ok.Count(100) != 3 {
		t.Errorf("Count = %d", ok.Count(100))
	}
	if a, err := Raw([]byte{0xd0, 0x01}); err != nil || !bytes.Equal(a.Value, []byte{0x01}) {
		t.Errorf("Raw: %x, %v", a.Value, err)
	}
}
