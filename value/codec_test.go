package value

import (
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

type tagged struct {
	Plain   int
	JSON    string `json:"json_name"`
	Both    string `json:"ignored" msgpack:"mp_name"`
	Skip    string `json:"-"`
	Omit    int    `json:"omit,omitempty"`
	private int
}

// Field names: msgpack tag, else json tag, else the Go name; "-" skips,
// omitempty leaves zero values out, unexported fields are not sent.
func TestStructFieldNames(t *testing.T) {
	b, err := For[tagged]().Append(nil, tagged{Plain: 1, JSON: "j", Both: "b", Skip: "s", private: 9})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	m, err := r.ReadAny()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"Plain": int64(1), "json_name": "j", "mp_name": "b"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("encoded %v, want %v", m, want)
	}
	b, _ = For[tagged]().Append(nil, tagged{Omit: 3})
	r = NewReader(b)
	if m, _ := r.ReadAny(); m.(map[string]any)["omit"] != int64(3) {
		t.Fatalf("omitempty dropped a non-zero field: %v", m)
	}
}

// JSON written by hand (the CLI's) decodes into structs as encoding/json
// would: keys match field names case-insensitively, unknown keys are
// skipped, integer map keys may be strings.
func TestDecodeFromJSONValues(t *testing.T) {
	type inner struct{ N int }
	type req struct {
		Key    string `json:"key"`
		Value  []byte
		Inner  inner
		Counts map[int]string
		When   time.Time
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(`{"KEY":"k","value":"aGk=","inner":{"n":7},"counts":{"3":"c"},"extra":[1,2],"when":"2026-12-01T10:00:00Z"}`))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := AppendAny(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	got, err := For[req]().Decode(&r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Key != "k" || string(got.Value) != "aGk=" || got.Inner.N != 7 || got.Counts[3] != "c" || got.When.Hour() != 10 {
		t.Fatalf("decoded %+v", got)
	}
}

// Decode errors speak Go: the field path, the Go type, what was found.
func TestDecodeErrorsNameFields(t *testing.T) {
	type item struct{ Name string }
	type putReq struct {
		Value string
		Items []item
	}
	cases := []struct {
		in   any
		want string
	}{
		{map[string]any{"Value": 5}, "field Value: expected string, got int"},
		{map[string]any{"Items": []any{map[string]any{"Name": "a"}, map[string]any{"Name": true}}}, "field Items[1].Name: expected string, got bool"},
		{nil, "expected value.putReq, got nil"},
		{"text", "expected value.putReq, got string"},
		{map[string]any{"Items": "x"}, "field Items: expected []value.item, got string"},
	}
	for _, c := range cases {
		b, err := AppendAny(nil, c.in)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(b)
		_, err = For[putReq]().Decode(&r)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "c0") {
			t.Errorf("%v: raw msgpack code in %q", c.in, err)
		}
	}
}

// A map key in an error's path is quoted shortly, as the strings in
// messages are: a peer's megabyte key does not become a megabyte error
// (which the server would log and send back).
func TestDecodeErrorQuotesLittleOfAKey(t *testing.T) {
	huge := strings.Repeat("k", 1<<20)
	b := AppendMapHeader(nil, 1)
	b = AppendString(b, huge)
	b = AppendBool(b, true)
	r := NewReader(b)
	_, err := For[map[string]int]().Decode(&r)
	if err == nil || !strings.Contains(err.Error(), "expected int, got bool") || !strings.Contains(err.Error(), "(1048576 bytes)") || len(err.Error()) > 300 {
		t.Fatalf("got a %d-byte error: %.200s", len(err.Error()), err)
	}
}

func TestCheckRefusesTypesWithoutValues(t *testing.T) {
	type noExported struct{ a, b int }
	type withChan struct{ C chan int }
	cases := map[reflect.Type]string{
		reflect.TypeFor[chan int]():       "chan",
		reflect.TypeFor[func()]():         "func",
		reflect.TypeFor[unsafe.Pointer](): "unsafe.Pointer",
		reflect.TypeFor[complex128]():     "complex",
		reflect.TypeFor[noExported]():     "no exported fields",
		reflect.TypeFor[withChan]():       "field C",
		reflect.TypeFor[[]func()]():       "element",
		reflect.TypeFor[error]():          "interface with methods",
	}
	for typ, want := range cases {
		if err := Check(typ); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: got %v, want %q", typ, err, want)
		}
	}
	for _, ok := range []reflect.Type{reflect.TypeFor[struct{}](), reflect.TypeFor[tagged](), reflect.TypeFor[map[string][]any](), reflect.TypeFor[time.Time]()} {
		if err := Check(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}

type node struct {
	V    int
	Next *node
}

func TestRecursiveTypes(t *testing.T) {
	roundTrip(t, node{1, &node{2, &node{3, nil}}})
	cyc := &node{V: 1}
	cyc.Next = cyc
	if _, err := For[*node]().Append(nil, cyc); err == nil || !strings.Contains(err.Error(), "nesting deeper than") {
		t.Fatalf("cyclic value: %v", err)
	}
}

func TestEmbeddedFieldsArePromoted(t *testing.T) {
	type Base struct{ ID int }
	type user struct {
		Base
		Name string
	}
	b, _ := For[user]().Append(nil, user{Base{7}, "u"})
	r := NewReader(b)
	m, _ := r.ReadAny()
	if !reflect.DeepEqual(m, map[string]any{"ID": int64(7), "Name": "u"}) {
		t.Fatalf("encoded %v", m)
	}
	ownRoundTrip(t, user{Base{7}, "u"})
}

func TestTimeRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(0, 0).UTC(), time.Unix(1700000000, 0).UTC(), time.Unix(1700000000, 123).UTC(), time.Unix(-5, 9).UTC(), time.Unix(1<<35, 1).UTC()} {
		ownRoundTrip(t, tm)
	}
}

func TestMapsEncodeDeterministically(t *testing.T) {
	m := map[string]int{}
	for i := 0; i < 100; i++ {
		m[strings.Repeat("k", i)] = i
	}
	a, _ := For[map[string]int]().Append(nil, m)
	for i := 0; i < 20; i++ {
		b, _ := For[map[string]int]().Append(nil, m)
		if string(a) != string(b) {
			t.Fatal("the same map encoded two ways")
		}
	}
}

// AppendAny (CallAny's arguments, results of type any) encodes a
// map[string]any as the map plan does: keys sorted by their encoding, so
// equal maps encode to equal bytes.
func TestAppendAnyMapsEncodeDeterministically(t *testing.T) {
	m := map[string]any{}
	for i := 0; i < 40; i++ {
		m[strings.Repeat("k", i%35)+string(rune('a'+i%26))] = i
	}
	want, err := For[map[string]any]().Append(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		got, err := AppendAny(nil, []any{m})
		if err != nil {
			t.Fatal(err)
		}
		if string(got[1:]) != string(want) {
			t.Fatal("AppendAny encoded a map unlike the map plan (or two ways)")
		}
	}
}

// A small input claiming large containers cannot make decoding allocate
// more than a small multiple of its size, however the Go type amplifies
// each element.
func TestDecodeAllocationBoundedByInput(t *testing.T) {
	type wide struct {
		A [512]int64
		B string
	}
	// 64 KiB of empty maps, each of which would become a 4 KiB struct.
	b := AppendArrayHeader(nil, 65536)
	for i := 0; i < 65536; i++ {
		b = AppendMapHeader(b, 0)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := NewReader(b)
	_, err := For[[]wide]().Decode(&r)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "would allocate more than") {
		t.Fatalf("got %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 32*uint64(len(b))+(1<<20) {
		t.Fatalf("allocated %d bytes for a %d-byte input", n, len(b))
	}
}

type hosted struct{ id uint64 }

func (h *hosted) AppendMsgpack(b []byte, host any) ([]byte, error) {
	return AppendString(b, host.(string)+":"+string(rune('0'+h.id))), nil
}

func (h *hosted) ReadMsgpack(r *Reader, host any) error {
	s, err := r.ReadString()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(s, host.(string)+":") {
		return &Error{Msg: "wrong host"}
	}
	h.id = uint64(s[len(s)-1] - '0')
	return nil
}

// Types that encode themselves see the host given to AppendHost and
// DecodeHost, wherever they sit in a value.
func TestMarshalerSeesHost(t *testing.T) {
	type holder struct {
		A    *hosted
		List []*hosted
		M    map[string]*hosted
	}
	v := holder{A: &hosted{1}, List: []*hosted{{2}, nil}, M: map[string]*hosted{"x": {3}}}
	b, err := For[holder]().AppendHost(nil, v, "conn7")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(b)
	got, err := For[holder]().DecodeHost(&r, "conn7")
	if err != nil {
		t.Fatal(err)
	}
	if got.A.id != 1 || got.List[0].id != 2 || got.List[1] != nil || got.M["x"].id != 3 {
		t.Fatalf("decoded %+v", got)
	}
	r = NewReader(b)
	if _, err := For[holder]().DecodeHost(&r, "other"); err == nil || !strings.Contains(err.Error(), "field A") {
		t.Fatalf("wrong host: %v", err)
	}
}

// ReadAny on nested containers that each claim the rest of the input
// allocates within its budget, not the input times the depth.
func TestReadAnyAllocationBounded(t *testing.T) {
	for _, mk := range []func(b []byte, n int) []byte{
		func(b []byte, n int) []byte { return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)) },
		func(b []byte, n int) []byte { return append(b, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n)) },
	} {
		var b []byte
		for len(b) < 64<<10 {
			b = mk(b, (64<<10)/10)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := NewReader(b)
		_, err := r.ReadAny()
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatal("accepted")
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 32*uint64(len(b))+(1<<20) {
			t.Fatalf("allocated %d bytes for a %d-byte input (%v)", n, len(b), err)
		}
	}
}

// Integers beyond int64 say so, however they arrive (JSON numbers too big
// for int64 and uint64 become floats).
func TestIntegerOverflowMessages(t *testing.T) {
	for _, b := range [][]byte{AppendUint(nil, 1<<63), AppendFloat64(nil, 1e20), AppendFloat64(nil, -1e20)} {
		r := NewReader(b)
		if _, err := For[int64]().Decode(&r); err == nil || !strings.Contains(err.Error(), "overflows int64") {
			t.Errorf("%x: %v", b, err)
		}
	}
	r := NewReader(AppendInt(nil, 300))
	if _, err := For[int8]().Decode(&r); err == nil || !strings.Contains(err.Error(), "overflows int8") {
		t.Errorf("int8: %v", err)
	}
}

// ReadTime returns a time in UTC whichever form it came in: an RFC 3339
// string with an offset reads as the same instant in UTC, like a
// timestamp does.
func TestTimeFromStringIsUTC(t *testing.T) {
	b := AppendString(nil, "2026-12-01T10:00:00+02:00")
	r := NewReader(b)
	got, err := For[time.Time]().Decode(&r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Location() != time.UTC || got.Hour() != 8 {
		t.Fatalf("decoded %v (location %v), want 2026-12-01 08:00:00 UTC", got, got.Location())
	}
}
