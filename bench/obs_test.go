package main

import (
	"strings"
	"testing"
)

func TestPickObsSetups(t *testing.T) {
	all := []obsSetup{{name: "off"}, {name: "metrics"}, {name: "diag", onlyNamed: true}}
	names := func(ss []obsSetup) string {
		var out []string
		for _, s := range ss {
			out = append(out, s.name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		only []string
		want string
	}{
		{nil, "off,metrics"}, // a diagnostic setup runs only when named
		{[]string{"diag"}, "off,diag"},
		{[]string{"metrics", "diag"}, "off,metrics,diag"},
		{[]string{"off"}, "off"},
	} {
		got, err := pickObsSetups(all, tc.only)
		if err != nil || names(got) != tc.want {
			t.Errorf("pickObsSetups(%v) = %s, %v; want %s", tc.only, names(got), err, tc.want)
		}
	}
	if _, err := pickObsSetups(all, []string{"metrics", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "diag") {
		t.Errorf("an unknown setup: err = %v, want one naming it and the known ones", err)
	}
}
