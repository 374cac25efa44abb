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

// FuzzParseMetadata: the one-block path for small metadata and the
// general path agree on every input, errors included.
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
	})
}
