package request

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

func seedExample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/seed_example.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, s string) *Node {
	t.Helper()
	n, err := ParseJSON([]byte(s), Limits{})
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", s, err)
	}
	return n
}

func mp(t testing.TB, v any) []byte {
	t.Helper()
	b, err := value.AppendAny(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Canonical(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseSeedExample(t *testing.T) {
	n, err := ParseJSON(seedExample(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != "rq_post_iss_object+full" || n.Title != "post_iss_object" || len(n.Args) != 3 {
		t.Fatalf("root = %+v", n)
	}
	if n.Level() != Full {
		t.Errorf("level = %v, want full", n.Level())
	}
	if !bytes.Equal(n.Args[0].Value, mp(t, "123")) || !bytes.Equal(n.Args[1].Value, mp(t, "string")) {
		t.Errorf("args 0, 1 = %x, %x", n.Args[0].Value, n.Args[1].Value)
	}
	sub := n.Args[2].Node
	if sub == nil || sub.ID != "uuid_100_2" || sub.Title != "make_blob_coro" || len(sub.Args) != 1 {
		t.Fatalf("subrequest = %+v", sub)
	}
	if want := mp(t, map[string]any{"value0": "payload"}); !bytes.Equal(sub.Args[0].Value, want) {
		t.Errorf("sub arg = %x, want %x", sub.Args[0].Value, want)
	}
	if sub.Level() != None {
		t.Errorf("sub level = %v", sub.Level())
	}
}

// TestKeyGolden pins the content-key encoding: a change here changes every
// key in every cache, so it must come with a new keyVersion.
func TestKeyGolden(t *testing.T) {
	n, err := ParseJSON(seedExample(t), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := n.Key()
	sub := n.Args[2].Node.Key()
	// Recompute by hand from the documented layout.
	manual := func(id string, parts ...[]byte) [32]byte {
		var b []byte
		b = append(b, 1, 'N', byte(len(id)))
		b = append(b, id...)
		b = append(b, byte(len(parts)))
		for _, p := range parts {
			b = append(b, p...)
		}
		return sha256Sum(b)
	}
	val := func(v []byte) []byte { return append([]byte{'V', byte(len(v))}, v...) }
	wantSub := manual("uuid_100_2", val(mp(t, map[string]any{"value0": "payload"})))
	if sub != wantSub {
		t.Fatalf("sub key = %x, want %x", sub, wantSub)
	}
	want := manual("rq_post_iss_object+full", val(mp(t, "123")), val(mp(t, "string")), append([]byte{'R'}, wantSub[:]...))
	if got != want {
		t.Fatalf("key = %x, want %x", got, want)
	}
	const golden = "f7e86d6f7110c499cc0b2fa7d380c39e2cd8094d9da8b19b7b6dada5b2c38a18"
	if h := hex.EncodeToString(got[:]); h != golden {
		t.Errorf("seed example key %s, want %s", h, golden)
	}
}

func TestParseOrderAndWhitespace(t *testing.T) {
	base := mustParse(t, string(seedExample(t)))
	variants := []string{
		// compact
		`{"uuid":"rq_post_iss_object+full","title":"post_iss_object","args":{"tuple_element0":"123","tuple_element1":"string","tuple_element2":{"uuid":"uuid_100_2","title":"make_blob_coro","args":{"tuple_element0":{"value0":"payload"}}}}}`,
		// uuid after the nested requests, args members shuffled
		`{"args":{"tuple_element2":{"args":{"tuple_element0":{"value0":"payload"}},"title":"make_blob_coro","uuid":"uuid_100_2"},"tuple_element0":"123","tuple_element1":"string"},"title":"post_iss_object","uuid":"rq_post_iss_object+full"}`,
		// pretty, tabs, CRLF, and the Cradle extras
		"{\r\n\t\"title\": \"post_iss_object\",\r\n\t\"plain_uuid\": \"rq_post_iss_object\", \"dll_dir\": \"\", \"dll_name\": \"\",\r\n\t\"args\": {\"tuple_element1\": \"string\", \"tuple_element0\": \"123\",\n \"tuple_element2\": {\"uuid\": \"uuid_100_2\", \"args\": {\"tuple_element0\": {\"value0\": \"payload\"}}, \"title\": \"make_blob_coro\"}},\r\n\t\"uuid\": \"rq_post_iss_object+full\"\r\n}",
		// args as an array; a normalization wrapper around a plain value
		`{"uuid":"rq_post_iss_object+full","args":[{"uuid":"normalization<std::string,func>","title":"normalize","args":{"tuple_element0":"123"}},"string",{"uuid":"uuid_100_2","args":[{"value0":"payload"}]}]}`,
	}
	for i, v := range variants {
		n := mustParse(t, v)
		if n.Key() != base.Key() {
			t.Errorf("variant %d: key differs", i)
		}
	}
}

func TestParseRetryHint(t *testing.T) {
	n := mustParse(t, `{"uuid":"f+mem","args":{},"base_millis":100,"max_attempts":3}`)
	if n.Retry != (RetryHint{BaseMillis: 100, MaxAttempts: 3}) {
		t.Fatalf("retry = %+v", n.Retry)
	}
	if n.Key() != New("f+mem").Key() {
		t.Error("the retry hint changed the key")
	}
}

func TestParseValues(t *testing.T) {
	n := mustParse(t, `{"uuid":"f","args":{"tuple_element0":[1,-2,3.5,1e3,2.0,18446744073709551615,true,null,"s"],
		"tuple_element1":{"b":1,"a":{"as_file":false,"size":3,"blob":"YWJj"}},
		"tuple_element2":{"as_file":false,"size":0}, "tuple_element3":{"as_file":false,"size":2,"blob":"aGk"}}}`)
	want0 := mp(t, []any{1, -2, 3.5, 1000.0, 2.0, uint64(18446744073709551615), true, nil, "s"})
	if !bytes.Equal(n.Args[0].Value, want0) {
		t.Errorf("arg 0 = %x, want %x", n.Args[0].Value, want0)
	}
	want1 := mp(t, map[string]any{"a": []byte("abc"), "b": 1})
	if !bytes.Equal(n.Args[1].Value, want1) {
		t.Errorf("arg 1 = %x, want %x", n.Args[1].Value, want1)
	}
	if !bytes.Equal(n.Args[2].Value, []byte{0xc4, 0}) {
		t.Errorf("empty blob = %x", n.Args[2].Value)
	}
	if !bytes.Equal(n.Args[3].Value, mp(t, []byte("hi"))) {
		t.Errorf("unpadded base64 blob = %x", n.Args[3].Value)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string // substrings of the message
	}{
		{"malformed", `{"uuid": "f", "args": {]}`, []string{"malformed JSON", "at byte 23"}},
		{"truncated", `{"uuid": "f", "args": {`, []string{"unexpected end of input", "at byte 23"}},
		{"trailing", `{"uuid":"f","args":{}} {}`, []string{"after the request", "at byte 23"}},
		{"not a request", `[1,2]`, []string{"want a request object", "at byte 0"}},
		{"no args", `{"uuid":"f"}`, []string{"want a request object"}},
		{"empty uuid", `{"uuid":"","args":{}}`, []string{"uuid", "non-empty string", "at byte 8"}},
		{"uuid type", `{"uuid":5,"args":{}}`, []string{"uuid: want a non-empty string, got a number"}},
		{"unknown field", `{"uuid":"f","args":{},"tittle":"x"}`, []string{`unknown request field "tittle"`, "at byte 22"}},
		{"duplicate key", `{"uuid":"f","uuid":"g","args":{}}`, []string{`duplicate key "uuid"`, "at byte 12"}},
		{"gap in tuple", `{"uuid":"f","args":{"tuple_element0":1,"tuple_element2":2}}`, []string{`args: unexpected key "tuple_element2"`, "tuple_element0 … tuple_element1"}},
		{"bad tuple key", `{"uuid":"f","args":{"tuple_element00":1}}`, []string{`unexpected key "tuple_element00"`}},
		{"nested path", `{"uuid":"f","args":{"tuple_element0":1,"tuple_element1":2,"tuple_element2":{"uuid":"g","args":{"tuple_element0":{"uuid":"h","args":{"x":1}}}}}}`,
			[]string{"args.tuple_element2.args.tuple_element0.args: unexpected key \"x\""}},
		{"uuid without args", `{"uuid":"f","args":{"tuple_element0":{"uuid":"g"}}}`, []string{"args.tuple_element0", `"uuid" but no "args"`}},
		{"blob size", `{"uuid":"f","args":{"tuple_element0":{"as_file":false,"size":5,"blob":"YWJj"}}}`, []string{"args.tuple_element0", "blob size 5 disagrees with its data (3 bytes)"}},
		{"blob base64", `{"uuid":"f","args":{"tuple_element0":{"as_file":false,"size":3,"blob":"!!!"}}}`, []string{"args.tuple_element0.blob", "not valid base64"}},
		{"blob as file", `{"uuid":"f","args":{"tuple_element0":{"as_file":true,"size":3,"blob":"/tmp/x"}}}`, []string{"as_file: true", "not supported"}},
		{"blob no size", `{"uuid":"f","args":{"tuple_element0":{"as_file":false,"blob":"YWJj"}}}`, []string{`blob has no "size"`}},
		{"blob extra key", `{"uuid":"f","args":{"tuple_element0":{"as_file":false,"size":0,"x":1}}}`, []string{`unexpected key "x" in a blob`}},
		{"request in value", `{"uuid":"f","args":{"tuple_element0":[{"uuid":"g","args":{}}]}}`, []string{"args.tuple_element0[0]", "only be a request argument"}},
		{"number range", `{"uuid":"f","args":{"tuple_element0":1e999}}`, []string{"out of range"}},
		{"normalization arity", `{"uuid":"f","args":{"tuple_element0":{"uuid":"normalization<int,func>","args":{}}}}`, []string{"normalization wrapper", "0 arguments"}},
		{"normalized value at top", `{"uuid":"normalization<int,func>","args":{"tuple_element0":1}}`, []string{"normalization of a plain value"}},
		{"retry hint", `{"uuid":"f","args":{},"max_attempts":-1}`, []string{"max_attempts: want a non-negative integer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJSON([]byte(tc.in), Limits{})
			if status.CodeOf(err) != status.InvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if !errors.Is(err, status.ErrSerialization) {
				t.Errorf("err %v is not a serialization error", err)
			}
		})
	}
}

// nested returns a request JSON with depth nested requests.
func nested(depth int) string {
	var sb strings.Builder
	for range depth - 1 {
		sb.WriteString(`{"uuid":"f","args":{"tuple_element0":`)
	}
	sb.WriteString(`{"uuid":"f","args":{}}`)
	for range depth - 1 {
		sb.WriteString(`}}`)
	}
	return sb.String()
}

func TestParseLimits(t *testing.T) {
	if _, err := ParseJSON([]byte(nested(64)), Limits{}); err != nil {
		t.Fatalf("depth 64: %v", err)
	}
	_, err := ParseJSON([]byte(nested(65)), Limits{})
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "nested deeper than 64") {
		t.Fatalf("depth 65: %v", err)
	}
	_, err = ParseJSON([]byte(nested(5)), Limits{MaxDepth: 4})
	if err == nil {
		t.Fatal("depth 5 with MaxDepth 4 accepted")
	}
	// A million brackets: refused quickly, no stack overflow.
	deep := strings.Repeat("[", 1_000_000)
	_, err = ParseJSON([]byte(`{"uuid":"f","args":{"tuple_element0":`+deep), Limits{})
	if status.CodeOf(err) != status.InvalidArgument {
		t.Fatalf("deep brackets: %v", err)
	}
	// Node count.
	var sb strings.Builder
	sb.WriteString(`{"uuid":"f","args":[`)
	for i := range 20 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"uuid":"g","args":{}}`)
	}
	sb.WriteString(`]}`)
	if _, err := ParseJSON([]byte(sb.String()), Limits{MaxNodes: 21}); err != nil {
		t.Fatalf("21 nodes, limit 21: %v", err)
	}
	_, err = ParseJSON([]byte(sb.String()), Limits{MaxNodes: 20})
	if err == nil || !strings.Contains(err.Error(), "more than 20 requests") {
		t.Fatalf("21 nodes, limit 20: %v", err)
	}
	// Value depth.
	_, err = ParseJSON([]byte(`{"uuid":"f","args":[`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`]}`), Limits{})
	if err == nil || !strings.Contains(err.Error(), "value nested deeper") {
		t.Fatalf("deep value: %v", err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, in := range []string{
		string(seedExample(t)),
		`{"uuid":"f","title":"t \"q\" \\ \u0001 é","args":{"tuple_element0":[1,-1,1.5,2.0,1e300,{"k":[null,true,false]}],"tuple_element1":{"as_file":false,"size":3,"blob":"AAEC"}},"base_millis":5,"max_attempts":2}`,
		nested(10),
	} {
		n := mustParse(t, in)
		out, err := n.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON written: %s", out)
		}
		m := mustParse(t, string(out))
		if m.Key() != n.Key() || m.Title != n.Title || m.Retry != n.Retry {
			t.Errorf("round trip changed the tree:\n in  %s\n out %s", in, out)
		}
		out2, _ := AppendJSON(nil, m)
		if !bytes.Equal(out, out2) {
			t.Errorf("writer not stable:\n%s\n%s", out, out2)
		}
	}
	// encoding/json can indent it.
	n := mustParse(t, string(seedExample(t)))
	pretty, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if mustParse(t, string(pretty)).Key() != n.Key() {
		t.Error("indented round trip changed the key")
	}
	var u Node
	if err := json.Unmarshal(pretty, &u); err != nil || u.Key() != n.Key() {
		t.Errorf("json.Unmarshal: %v", err)
	}
}

func TestAppendValueJSON(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "null"},
		{true, "true"},
		{-5, "-5"},
		{uint64(1 << 63), "9223372036854775808"},
		{2.0, "2.0"},
		{float32(1.5), "1.5"},
		{1e21, "1e+21"},
		{"a\"b\n\x01", `"a\"b\n\u0001"`},
		{"\xff", `"\ufffd"`},
		{[]byte("hi"), `{"as_file":false,"size":2,"blob":"aGk="}`},
		{[]any{1, "x"}, `[1,"x"]`},
		{map[string]any{"value0": "p"}, `{"value0":"p"}`},
	} {
		got, err := AppendValueJSON(nil, mp(t, tc.v))
		if err != nil || string(got) != tc.want {
			t.Errorf("AppendValueJSON(%#v) = %s, %v; want %s", tc.v, got, err, tc.want)
		}
	}
	// non-string map keys become strings
	b := value.AppendMapHeader(nil, 1)
	b = value.AppendInt(b, 7)
	b = value.AppendBool(b, true)
	if got, err := AppendValueJSON(nil, b); err != nil || string(got) != `{"7":true}` {
		t.Errorf("int key: %s, %v", got, err)
	}
	nan := value.AppendFloat64(nil, mathNaN())
	if _, err := AppendValueJSON(nil, nan); err == nil {
		t.Error("NaN written as JSON")
	}
	if _, err := AppendValueJSON(nil, []byte{0x92, 1}); err == nil {
		t.Error("truncated array accepted")
	}
}

// A value that is a map with "uuid" and "args" has no Cradle JSON form:
// ParseJSON would read it back as a request, so that data built in Go
// (say, a record a user supplied) became a call of the function it names.
// AppendJSON refuses it rather than write a different tree.
func TestJSONValueThatReadsAsRequest(t *testing.T) {
	n := New("store+mem", map[string]any{"uuid": "delete_all+none", "args": map[string]any{}})
	if err := n.Validate(Limits{}); err != nil {
		t.Fatal(err)
	}
	out, err := n.MarshalJSON()
	if err == nil {
		m, perr := ParseJSON(out, Limits{})
		if perr == nil && (m.Key() != n.Key() || m.Args[0].IsRequest()) {
			t.Fatalf("a value argument read back as a request: %s", out)
		}
		return
	}
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "args.tuple_element0") {
		t.Fatalf("got %v, want InvalidArgument naming the argument", err)
	}
}

// The same holds deeper in a value: a map with the key "as_file"
// anywhere reads back as a blob, one with "uuid" and "args" as a
// subrequest (refused inside a value). AppendJSON refuses both.
func TestJSONNestedValuesThatReadAsSomethingElse(t *testing.T) {
	for _, tc := range []struct {
		name string
		arg  any
		want string
	}{
		{"as_file at the top", map[string]any{"as_file": false, "size": 1, "blob": "AA=="}, `"as_file"`},
		{"as_file nested", map[string]any{"x": []any{1, map[string]any{"as_file": true}}}, `"as_file"`},
		{"request nested", []any{map[string]any{"uuid": "f+none", "args": map[string]any{}}}, `"uuid" and "args"`},
		{"uuid alone at the top", map[string]any{"uuid": "u"}, `the key "uuid"`},
	} {
		n := New("store+mem", tc.arg)
		if err := n.Validate(Limits{}); err != nil {
			t.Fatal(err)
		}
		out, err := n.MarshalJSON()
		if err == nil {
			m, perr := ParseJSON(out, Limits{})
			if perr == nil && m.Key() == n.Key() {
				continue // read back as it was: fine too
			}
			t.Errorf("%s: written as %s, read back as another tree (%v)", tc.name, out, perr)
			continue
		}
		if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "args.tuple_element0") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument naming the argument and %s", tc.name, err, tc.want)
		}
	}
	// Maps merely holding such strings as values, or a uuid below the
	// argument, are fine.
	n := New("store+mem", map[string]any{"k": "as_file", "v": map[string]any{"uuid": "u"}})
	out, err := n.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if m, err := ParseJSON(out, Limits{}); err != nil || m.Key() != n.Key() {
		t.Fatalf("%s read back: %v", out, err)
	}
}
