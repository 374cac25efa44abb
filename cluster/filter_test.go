package cluster

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	tags := map[string]string{"role": "worker", "zone": "a", "gpu": ""}
	cases := []struct {
		in    string
		match bool
		str   string
	}{
		{"", true, ""},
		{"role=worker", true, "role=worker"},
		{" zone = a , role=worker ", true, "role=worker,zone=a"},
		{"role=worker,zone=b", false, "role=worker,zone=b"},
		{"gpu", true, "gpu"},
		{"gpu=", true, "gpu="},
		{"gpu=x", false, "gpu=x"},
		{"tpu", false, "tpu"},
		{"role", true, "role"},
	}
	for _, c := range cases {
		f, err := ParseFilter(c.in)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", c.in, err)
		}
		if got := f.Match(tags); got != c.match {
			t.Errorf("%q matches %v: %v, want %v", c.in, tags, got, c.match)
		}
		if f.String() != c.str {
			t.Errorf("%q prints as %q, want %q", c.in, f.String(), c.str)
		}
		again, err := ParseFilter(f.String())
		if err != nil || again.String() != f.String() {
			t.Errorf("%q does not survive a round trip: %q, %v", c.in, again.String(), err)
		}
	}
	if !(Filter{}).Match(nil) || !(Filter{}).IsZero() {
		t.Error("the zero filter must match everything")
	}
	if f := mustFilter(t, "role=worker"); f.Match(nil) {
		t.Error("role=worker matches a member without tags")
	}
}

func TestParseFilterErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"role=worker,,zone=a", "term 2 at byte 12"},
		{"=a", "empty key"},
		{"role=a,zone=b,role=c", `key "role" already given in term 1`},
		{"role=a=b", "more than one '='"},
		{"zone=a,ro\x01le=x", "control character"},
		{",", "term 1 at byte 0"},
	}
	for _, c := range cases {
		_, err := ParseFilter(c.in)
		if !errors.Is(err, ErrBadFilter) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseFilter(%q) = %v, want ErrBadFilter mentioning %q", c.in, err, c.want)
		}
	}
}

func TestFilterTags(t *testing.T) {
	f := FilterTags(map[string]string{"zone": "a", "role": "worker"})
	if f.String() != "role=worker,zone=a" {
		t.Fatalf("FilterTags prints %q", f.String())
	}
	if !f.Match(map[string]string{"role": "worker", "zone": "a", "x": "y"}) || f.Match(map[string]string{"role": "worker"}) {
		t.Fatal("FilterTags is not an all-of match")
	}
}
