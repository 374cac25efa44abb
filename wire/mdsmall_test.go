package wire

import (
	"reflect"
	"testing"
)

func TestSmallMetadataOneAllocation(t *testing.T) {
	b := appendMetadata(nil, []MD{{Key: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}})
	var md []MD
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if md, err = ParseMetadata(nil, b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 1 {
		t.Errorf("%.0f allocations for one small pair, want 1", allocs)
	}
	if len(md) != 1 || md[0].Key != "traceparent" || md[0].Value[:3] != "00-" {
		t.Errorf("parsed %v", md)
	}
	// Strings of one parse are not changed by the next.
	first, _ := ParseMetadata(nil, appendMetadata(nil, []MD{{Key: "a", Value: "1"}, {Key: "", Value: ""}}))
	ParseMetadata(nil, appendMetadata(nil, []MD{{Key: "b", Value: "2"}}))
	if !reflect.DeepEqual(first, []MD{{Key: "a", Value: "1"}, {}}) {
		t.Errorf("first parse now %v", first)
	}
}

func TestMetadataCacheSharesParse(t *testing.T) {
	var c MetadataCache
	tp := appendMetadata(nil, []MD{{Key: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}})
	first, err := c.Parse(tp)
	if err != nil || len(first) != 1 || first[0].Key != "traceparent" {
		t.Fatalf("Parse = %v, %v", first, err)
	}
	if allocs := testing.AllocsPerRun(100, func() { c.Parse(tp) }); allocs != 0 {
		t.Errorf("the same metadata again cost %.0f allocations, want 0", allocs)
	}
	again, _ := c.Parse(tp)
	if &again[0] != &first[0] || cap(again) != len(again) {
		t.Errorf("the same metadata was parsed anew (or its slice can be appended into)")
	}
	other, err := c.Parse(appendMetadata(nil, []MD{{Key: "a", Value: "1"}}))
	if err != nil || !reflect.DeepEqual(other, []MD{{Key: "a", Value: "1"}}) {
		t.Errorf("other metadata: %v, %v", other, err)
	}
	if first[0].Value[:3] != "00-" {
		t.Errorf("an earlier parse changed: %v", first)
	}
	if _, err := c.Parse([]byte{1, 5, 'a'}); err == nil {
		t.Error("truncated metadata parsed without an error")
	}
	big := appendMetadata(nil, []MD{{Key: "k", Value: string(make([]byte, 200))}})
	if md, err := c.Parse(big); err != nil || len(md) != 1 || len(md[0].Value) != 200 {
		t.Errorf("large metadata: %d pairs, %v", len(md), err)
	}
}

// FuzzParseMetadata: the one-block path for small metadata, the general
// path and a MetadataCache (fed each input twice) agree on every input,
// errors included.
func FuzzParseMetadata(f *testing.F) {
	f.Add(appendMetadata(nil, []MD{{Key: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}))
	f.Add(appendMetadata(nil, []MD{{Key: "a", Value: "1"}, {Key: "authorization", Value: "Bearer x"}}))
	f.Add(appendMetadata(nil, []MD{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}, {Key: "c", Value: "3"}}))
	f.Add([]byte{0})
	f.Add([]byte{2, 1, 'a'})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		small, errS := ParseMetadata(nil, b)
		general, errG := ParseMetadata(make([]MD, 0, 1), b)
		if (errS == nil) != (errG == nil) || (errS != nil && errS.Error() != errG.Error()) {
			t.Fatalf("errors differ: %v / %v", errS, errG)
		}
		if errS == nil && !(len(small) == 0 && len(general) == 0) && !reflect.DeepEqual(small, general) {
			t.Fatalf("results differ: %q / %q", small, general)
		}
		var c MetadataCache
		for range 2 {
			cached, errC := c.Parse(b)
			if (errC == nil) != (errG == nil) || (errC != nil && errC.Error() != errG.Error()) {
				t.Fatalf("cache's error differs: %v / %v", errC, errG)
			}
			if errC == nil && !(len(cached) == 0 && len(general) == 0) && !reflect.DeepEqual(cached, general) {
				t.Fatalf("cache's result differs: %q / %q", cached, general)
			}
		}
	})
}
