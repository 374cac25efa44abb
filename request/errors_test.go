package request

import (
	"fmt"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// A JSON text nested past what the limits allow names the limits a user
// sets (Limits.MaxDepth, Limits.Value.MaxDepth), not a number derived from
// them (the old reader said "deeper than 328").
func TestJSONDepthErrorNamesTheLimits(t *testing.T) {
	deep := `{"uuid":"f","args":[` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `]}`
	for _, tc := range []struct {
		lim  Limits
		want []string
	}{
		{Limits{}, []string{"at most 64, Limits.MaxDepth", "at most 64, Limits.Value.MaxDepth"}},
		{Limits{MaxDepth: 5, Value: value.Limits{MaxDepth: 3}}, []string{"at most 5, Limits.MaxDepth", "at most 3, Limits.Value.MaxDepth"}},
	} {
		_, err := ParseJSON([]byte(deep), tc.lim)
		if status.CodeOf(err) != status.InvalidArgument {
			t.Fatalf("got %v", err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: want it to say %q", err, w)
			}
		}
		for _, derived := range []string{"328", "194", "20"} {
			if strings.Contains(err.Error(), "than "+derived) {
				t.Errorf("%v quotes a derived depth", err)
			}
		}
	}
	// Within the structural bound, the precise limit is named.
	_, err := ParseJSON([]byte(`{"uuid":"f","args":[`+strings.Repeat("[", 70)+strings.Repeat("]", 70)+`]}`), Limits{})
	if err == nil || !strings.Contains(err.Error(), "value nested deeper than 64") {
		t.Errorf("deep value: %v", err)
	}
	_, err = ParseJSON([]byte(nested(9)), Limits{MaxDepth: 8})
	if err == nil || !strings.Contains(err.Error(), "requests nested deeper than 8") {
		t.Errorf("deep requests: %v", err)
	}
}

// maxMessage is the longest an error message about a huge input may be.
const maxMessage = 600

// Errors quote at most a little of the client's input, with an ellipsis
// and the length of what they cut.
func TestErrorsQuoteLittleInput(t *testing.T) {
	huge := strings.Repeat("k", 100000)
	digits := "1" + strings.Repeat("0", 100000)
	bad := strings.Repeat("\xff", 100000)
	mp := func(id string) []byte {
		b := value.AppendArrayHeader(nil, 3)
		b = value.AppendString(b, id)
		b = value.AppendString(b, "")
		return value.AppendArrayHeader(b, 0)
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"unknown field", second(ParseJSON([]byte(`{"uuid":"f","args":{},"`+huge+`":1}`), Limits{})), "unknown request field"},
		{"args key", second(ParseJSON([]byte(`{"uuid":"f","args":{"`+huge+`":1}}`), Limits{})), "unexpected key"},
		{"blob key", second(ParseJSON([]byte(`{"uuid":"f","args":[{"as_file":false,"size":0,"`+huge+`":1}]}`), Limits{})), "in a blob"},
		{"duplicate map key", second(ParseJSON([]byte(`{"uuid":"f","args":[{"`+huge+`":1,"`+huge+`":2}]}`), Limits{})), "duplicate key"},
		{"key in a path", second(ParseJSON([]byte(`{"uuid":"f","args":[{"`+huge+`":1e999}]}`), Limits{})), "out of range"},
		{"number", second(ParseJSON([]byte(`{"uuid":"f","args":[`+digits+`e999]}`), Limits{})), "out of range"},
		{"int field", second(ParseJSON([]byte(`{"uuid":"f","args":{},"base_millis":`+digits+`}`), Limits{})), "overflows int64"},
		{"normalization", second(ParseJSON([]byte(`{"uuid":"f","args":[{"uuid":"normalization<`+huge+`","args":[]}]}`), Limits{})), "normalization wrapper"},
		{"JSON uuid", second(ParseJSON([]byte(`{"uuid":"`+bad+`","args":{}}`), Limits{})), "not valid UTF-8"},
		{"msgpack uuid", second3(ParseMsgpack(mp(bad), Limits{})), "not valid UTF-8"},
		{"Validate uuid", New(bad).Validate(Limits{}), "not valid UTF-8"},
		{"path", second(ParsePath("args." + huge)), "part 2 is not tuple_elementN"},
		{"path start", second(ParsePath(huge)), `part 1 is not "args"`},
	} {
		if tc.err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		msg := tc.err.Error()
		if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "… (") || !strings.Contains(msg, " bytes)") {
			t.Errorf("%s: %.300s: want %q and a cut with the length", tc.name, msg, tc.want)
		}
		if len(msg) > maxMessage {
			t.Errorf("%s: a message of %d bytes: %.300s…", tc.name, len(msg), msg)
		}
	}
}

// Integers past int64 where the reader needs an int64 say so.
func TestIntOverflow(t *testing.T) {
	for _, in := range []string{
		`{"uuid":"f","args":{},"base_millis":9223372036854775808}`,
		`{"uuid":"f","args":{},"max_attempts":99999999999999999999}`,
		`{"uuid":"f","args":[{"as_file":false,"size":9223372036854775808,"blob":""}]}`,
	} {
		_, err := ParseJSON([]byte(in), Limits{})
		if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "overflows int64") {
			t.Errorf("%s: %v", in, err)
		}
	}
	for _, in := range []string{
		`{"uuid":"f","args":{},"base_millis":-1}`,
		`{"uuid":"f","args":{},"base_millis":1.5}`,
		`{"uuid":"f","args":{},"base_millis":"1"}`,
	} {
		_, err := ParseJSON([]byte(in), Limits{})
		if err == nil || !strings.Contains(err.Error(), "want a non-negative integer") {
			t.Errorf("%s: %v", in, err)
		}
	}
	// The largest int64 is accepted, and survives the msgpack form (the
	// old msgpack reader refused retry hints past 2^53).
	n := mustParse(t, `{"uuid":"f","args":{},"base_millis":9223372036854775807,"max_attempts":-0}`)
	if n.Retry.BaseMillis != 1<<63-1 || n.Retry.MaxAttempts != 0 {
		t.Fatalf("retry %+v", n.Retry)
	}
	b, err := AppendMsgpack(nil, n)
	if err != nil {
		t.Fatal(err)
	}
	if m, _, err := ParseMsgpack(b, Limits{}); err != nil || m.Retry != n.Retry {
		t.Fatalf("msgpack: %v", err)
	}
	// uint64 max as base_millis in msgpack.
	raw := value.AppendArrayHeader(nil, 5)
	raw = value.AppendString(raw, "f")
	raw = value.AppendString(raw, "")
	raw = value.AppendArrayHeader(raw, 0)
	raw = value.AppendUint(raw, 1<<64-1)
	raw = value.AppendUint(raw, 1)
	if _, _, err := ParseMsgpack(raw, Limits{}); err == nil || !strings.Contains(err.Error(), "base_millis: 18446744073709551615 overflows int64") {
		t.Errorf("msgpack base_millis: %v", err)
	}
	// Values keep the documented mapping: integers that fit 64 bits.
	v := mustParse(t, `{"uuid":"f","args":[18446744073709551615,-9223372036854775808]}`)
	if v.Args[0].Value[0] != 0xcf || v.Args[1].Value[0] != 0xd3 {
		t.Errorf("64-bit integers: % x, % x", v.Args[0].Value, v.Args[1].Value)
	}
}

// A function id must be valid UTF-8 in every form; a title need not be.
func TestUUIDMustBeUTF8(t *testing.T) {
	for _, in := range []string{
		"{\"uuid\":\"f\xff\",\"args\":{}}",
		`{"uuid":"f\ud800","args":{}}`,
		"{\"uuid\":\"f\",\"args\":[{\"uuid\":\"g\xc3\",\"args\":[]}]}",
	} {
		_, err := ParseJSON([]byte(in), Limits{})
		if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "is not valid UTF-8") || !strings.Contains(err.Error(), "uuid") {
			t.Errorf("%q: %v", in, err)
		}
	}
	if n, err := ParseJSON([]byte("{\"uuid\":\"f\",\"title\":\"t\xff\",\"args\":{}}"), Limits{}); err != nil || n.Title != "t\uFFFD" {
		t.Errorf("title: %v", err)
	}
	sub := value.AppendArrayHeader(nil, 3)
	sub = value.AppendString(sub, "g\xff")
	sub = value.AppendString(sub, "")
	sub = value.AppendArrayHeader(sub, 0)
	raw := value.AppendArrayHeader(nil, 3)
	raw = value.AppendString(raw, "f")
	raw = value.AppendString(raw, "t\xff")
	raw = value.AppendArrayHeader(raw, 1)
	raw = append(append(raw, 0x92, argRequest), sub...)
	_, _, err := ParseMsgpack(raw, Limits{})
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), `args.tuple_element0: uuid "g\xff" is not valid UTF-8`) {
		t.Errorf("msgpack: %v", err)
	}
	if _, _, _, _, ok := MsgpackKey(raw, Limits{}); ok {
		t.Error("MsgpackKey accepted an id that is not UTF-8")
	}
	if err := New("f", New("g\xff")).Validate(Limits{}); err == nil || !strings.Contains(err.Error(), "args.tuple_element0: uuid") {
		t.Errorf("Validate: %v", err)
	}
}

// Empty keys in an error path show as "" (an empty path element once
// crashed the message formatting).
func TestErrorPathEmptyKeys(t *testing.T) {
	for _, depth := range []int{3, 65} {
		in := `{"uuid":"0","args":{"tuple_element0":` + strings.Repeat(`{"":`, depth) + `1e999` + strings.Repeat(`}`, depth) + `}}`
		_, err := ParseJSON([]byte(in), Limits{})
		if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), `args.tuple_element0."".""`) {
			t.Errorf("depth %d: %v", depth, err)
		}
	}
}

// A malformed value inside a msgpack tree is reported once, at the byte
// where it goes wrong (not also at the start of the value, which read as
// two offsets for one error).
func TestMsgpackValueErrorOffset(t *testing.T) {
	b, err := AppendMsgpack(nil, New("f", 1, []any{1, 2}))
	if err != nil {
		t.Fatal(err)
	}
	bad := len(b) - 1 // the array's last element
	b[bad] = 0xc1
	_, _, err = ParseMsgpack(b, Limits{})
	want := fmt.Sprintf("args.tuple_element1: invalid msgpack type byte 0xc1 (at byte %d)", bad)
	if status.CodeOf(err) != status.InvalidArgument || !strings.HasSuffix(err.Error(), want) || strings.Count(err.Error(), "at byte") != 1 {
		t.Fatalf("got %v, want it to end in %q", err, want)
	}
}

// A malformed field of a request is named once, with its offset.
func TestMsgpackFieldErrorOffset(t *testing.T) {
	b := []byte{0x93, 0xa1, 'f', 0xc1, 0x90} // the title is not a value
	_, _, err := ParseMsgpack(b, Limits{})
	if want := "title: invalid msgpack type byte 0xc1 (at byte 3)"; status.CodeOf(err) != status.InvalidArgument || !strings.HasSuffix(err.Error(), want) || strings.Count(err.Error(), "at byte") != 1 {
		t.Fatalf("got %v, want it to end in %q", err, want)
	}
}
