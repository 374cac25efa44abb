package cluster

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Filter selects members by their tags: a member matches when every term
// matches (all-of). A term is key=value (the tag is present with exactly
// that value) or a bare key (the tag is present, whatever its value). The
// zero Filter matches every member.
type Filter struct {
	terms []filterTerm // sorted by key, keys unique
	bad   string       // why a filter given as text did not parse (WithTags): matches nothing
}

type filterTerm struct {
	key, value string
	any        bool // bare key: presence only
}

// ErrBadFilter is wrapped by every error of ParseFilter.
var ErrBadFilter = errors.New("cluster: bad tag filter")

// ParseFilter parses a filter such as "role=worker,zone=a" or "gpu": terms
// separated by commas, spaces around terms, keys and values ignored. An
// empty string is the filter that matches everything. Errors name the
// term and its byte offset.
func ParseFilter(s string) (Filter, error) {
	if strings.TrimSpace(s) == "" {
		return Filter{}, nil
	}
	var f Filter
	seen := make(map[string]int)
	off := 0
	for i, raw := range strings.Split(s, ",") {
		at := off
		off += len(raw) + 1
		bad := func(why string) error {
			return fmt.Errorf("%w %q: term %d at byte %d (%q): %s", ErrBadFilter, s, i+1, at, raw, why)
		}
		term := strings.TrimSpace(raw)
		if term == "" {
			return Filter{}, bad("empty term")
		}
		t := filterTerm{any: true}
		if k, v, ok := strings.Cut(term, "="); ok {
			t = filterTerm{key: strings.TrimSpace(k), value: strings.TrimSpace(v)}
			if strings.Contains(t.value, "=") {
				return Filter{}, bad("more than one '='")
			}
		} else {
			t.key = term
		}
		if err := checkTagKey(t.key); err != nil {
			return Filter{}, bad(err.Error())
		}
		if err := checkTagValue(t.value); err != nil {
			return Filter{}, bad(err.Error())
		}
		if prev, dup := seen[t.key]; dup {
			return Filter{}, bad(fmt.Sprintf("key %q already given in term %d", t.key, prev))
		}
		seen[t.key] = i + 1
		f.terms = append(f.terms, t)
	}
	sort.Slice(f.terms, func(i, j int) bool { return f.terms[i].key < f.terms[j].key })
	return f, nil
}

// FilterTags returns the filter that matches members having all of tags
// with exactly those values. It does not validate the tags: a tag no
// member can carry simply matches no member.
func FilterTags(tags map[string]string) Filter {
	var f Filter
	for k, v := range tags {
		f.terms = append(f.terms, filterTerm{key: k, value: v})
	}
	sort.Slice(f.terms, func(i, j int) bool { return f.terms[i].key < f.terms[j].key })
	return f
}

// Match reports whether tags satisfy every term of f.
func (f Filter) Match(tags map[string]string) bool {
	if f.bad != "" {
		return false
	}
	for _, t := range f.terms {
		v, ok := tags[t.key]
		if !ok || (!t.any && v != t.value) {
			return false
		}
	}
	return true
}

// IsZero reports whether f matches everything.
func (f Filter) IsZero() bool { return len(f.terms) == 0 && f.bad == "" }

// and is the filter matching what both f and g match.
func (f Filter) and(g Filter) Filter {
	if f.bad != "" {
		return f
	}
	if g.bad != "" {
		return g
	}
	if len(g.terms) == 0 {
		return f
	}
	if len(f.terms) == 0 {
		return g
	}
	return Filter{terms: append(append([]filterTerm(nil), f.terms...), g.terms...)}
}

// String returns f in the syntax ParseFilter reads, terms sorted by key.
func (f Filter) String() string {
	var b strings.Builder
	for i, t := range f.terms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.key)
		if !t.any {
			b.WriteByte('=')
			b.WriteString(t.value)
		}
	}
	return b.String()
}

// Tags are restricted so that every tag set can be written as a filter:
// keys and values cannot hold ',' (the term separator) or control
// characters, keys cannot hold '=', and neither starts or ends with a space
// (ParseFilter trims them).
func checkTagKey(k string) error {
	if k == "" {
		return errors.New("empty key")
	}
	if strings.ContainsRune(k, '=') {
		return fmt.Errorf("key %q contains '='", k)
	}
	return checkTagText("key", k)
}

func checkTagValue(v string) error {
	return checkTagText("value", v)
}

func checkTagText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s %q starts or ends with a space", what, s)
	}
	for i, r := range s {
		if r == ',' {
			return fmt.Errorf("%s %q contains ',' at byte %d", what, s, i)
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q contains a control character at byte %d", what, s, i)
		}
	}
	return nil
}

// checkTags validates a tag set a node advertises.
func checkTags(tags map[string]string) error {
	for k, v := range tags {
		if err := checkTagKey(k); err != nil {
			return fmt.Errorf("cluster: tag %q: %w", k, err)
		}
		if err := checkTagValue(v); err != nil {
			return fmt.Errorf("cluster: tag %q: %w", k, err)
		}
	}
	return nil
}
