package request

import "testing"

func benchTree7() *Node {
	leaf := func(a, b int) *Node { return New("math_add+mem", a, b) }
	return New("math_add+mem",
		New("math_add+mem", leaf(1, 2), leaf(3, 4)),
		New("math_add+mem", leaf(5, 6), leaf(7, 8)))
}

func BenchmarkKey7(b *testing.B) {
	t := benchTree7()
	b.ReportAllocs()
	for b.Loop() {
		_ = t.Key()
	}
}

func BenchmarkMsgpackKey7(b *testing.B) {
	raw, _ := AppendMsgpack(nil, benchTree7())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, _, ok := MsgpackKey(raw, Limits{}); !ok {
			b.Fatal("not ok")
		}
	}
}

func BenchmarkParseMsgpack7(b *testing.B) {
	raw, _ := AppendMsgpack(nil, benchTree7())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseMsgpack(raw, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseJSONSeed(b *testing.B) {
	raw := seedExample(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON(raw, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchJSONWide is a tree of 100 subrequests with a few values each.
func benchJSONWide(b *testing.B) []byte {
	subs := make([]any, 100)
	for i := range subs {
		subs[i] = New("g+mem", i, "some text", map[string]any{"value0": []any{1.5, true, nil}}, []byte("blob"))
	}
	raw, err := New("f+full", subs...).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkParseJSONWide(b *testing.B) {
	raw := benchJSONWide(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseJSON(raw, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalUnsorted(b *testing.B) {
	raw := nestedUnsortedMaps(8, 1000)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(raw); err != nil {
			b.Fatal(err)
		}
	}
}
