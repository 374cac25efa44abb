package request

// This file holds ParseJSON's first pass, which checks the syntax and
// records where each object and array ends, and the helpers that walk
// the checked text afterwards.

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(d []byte, off int) int {
	for off < len(d) && isSpace(d[off]) {
		off++
	}
	return off
}

// describeByte names the byte at off for a syntax error.
func describeByte(d []byte, off int) string {
	if off >= len(d) {
		return "end of input"
	}
	c := d[off]
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func syntaxErr(d []byte, off int, want string) *jsonErr {
	if off >= len(d) {
		return jerrorf(len(d), "malformed JSON: unexpected end of input")
	}
	return jerrorf(off, "malformed JSON: unexpected %s, want %s", describeByte(d, off), want)
}

// scan checks that p.data is one JSON value, records its containers in
// p.spans, and returns the offset where the value starts.
func (p *jsonParser) scan() (int, *jsonErr) {
	d := p.data
	if uint64(len(d)) >= math.MaxUint32 {
		return 0, jerrorf(0, "%d bytes of JSON is more than this reader takes (4 GiB)", len(d))
	}
	// A request adds two levels of nesting (its object and its args),
	// a value one per level, and a blob one more: anything deeper is over
	// a limit whichever it is, and stopping here bounds the spans kept.
	maxNest := 2*p.lim.MaxDepth + p.lim.Value.MaxDepth + 2
	p.spans = make([]span, 0, len(d)/64+4)
	const (
		wantValue = iota
		wantKey
		wantMore // ',' or the closing bracket, or the end at the top
	)
	open, nest := -1, 0 // the innermost open container, and how many are
	off := skipSpace(d, 0)
	root := off
	state := wantValue
	for {
		switch state {
		case wantValue:
			if off >= len(d) {
				return 0, syntaxErr(d, off, "a value")
			}
			if open >= 0 && d[p.spans[open].off] == '[' {
				p.spans[open].n++
			}
			switch c := d[off]; c {
			case '{', '[':
				if nest++; nest > maxNest {
					return 0, jerrorf(off, "JSON nested deeper than requests (at most %d, Limits.MaxDepth) with their values (at most %d, Limits.Value.MaxDepth) can be", p.lim.MaxDepth, p.lim.Value.MaxDepth)
				}
				p.spans = append(p.spans, span{off: uint32(off), end: uint32(open + 1)})
				open = len(p.spans) - 1
				off = skipSpace(d, off+1)
				closer := byte(']')
				state = wantValue
				if c == '{' {
					closer, state = '}', wantKey
				}
				if off < len(d) && d[off] == closer {
					open = p.close(open, off)
					nest--
					off++
					state = wantMore
				}
				continue
			case '"':
				end, err := scanString(d, off)
				if err != nil {
					return 0, err
				}
				off = end
			case 't', 'f', 'n':
				lit := "null"
				if c == 't' {
					lit = "true"
				} else if c == 'f' {
					lit = "false"
				}
				if !bytes.HasPrefix(d[off:], []byte(lit)) {
					return 0, syntaxErr(d, off, "a value")
				}
				off += len(lit)
			default:
				end, ok := scanNumber(d, off)
				if !ok {
					return 0, syntaxErr(d, end, "a value")
				}
				off = end
			}
			state = wantMore
		case wantKey:
			if off >= len(d) || d[off] != '"' {
				return 0, syntaxErr(d, off, "an object key (a string)")
			}
			p.spans[open].n++
			end, err := scanString(d, off)
			if err != nil {
				return 0, err
			}
			off = skipSpace(d, end)
			if off >= len(d) || d[off] != ':' {
				return 0, syntaxErr(d, off, "':' after an object key")
			}
			off = skipSpace(d, off+1)
			state = wantValue
		case wantMore:
			off = skipSpace(d, off)
			if open < 0 {
				if off != len(d) {
					return 0, jerrorf(off, "unexpected %s after the request", describeByte(d, off))
				}
				return root, nil
			}
			obj := d[p.spans[open].off] == '{'
			closer := byte(']')
			if obj {
				closer = '}'
			}
			switch {
			case off < len(d) && d[off] == ',':
				off = skipSpace(d, off+1)
				state = wantValue
				if obj {
					state = wantKey
				}
			case off < len(d) && d[off] == closer:
				open = p.close(open, off)
				nest--
				off++
			default:
				return 0, syntaxErr(d, off, fmt.Sprintf("',' or '%c'", closer))
			}
		}
	}
}

// close ends the container open at off and returns the enclosing one.
func (p *jsonParser) close(open, off int) int {
	up := int(p.spans[open].end) - 1
	p.spans[open].end = uint32(off + 1)
	return up
}

// scanString checks the string starting at d[off] ('"') and returns the
// offset just past it.
func scanString(d []byte, off int) (int, *jsonErr) {
	for i := off + 1; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			i++
			if i >= len(d) {
				break
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d)-i < 5 {
					return 0, syntaxErr(d, len(d), "")
				}
				for _, h := range d[i+1 : i+5] {
					if unhex(h) < 0 {
						return 0, jerrorf(i-1, "malformed JSON: bad \\u escape in a string")
					}
				}
				i += 4
			default:
				return 0, jerrorf(i-1, "malformed JSON: bad escape \\%s in a string", describeByte(d, i))
			}
		case c < 0x20:
			return 0, jerrorf(i, "malformed JSON: control character %s in a string (write it escaped)", describeByte(d, i))
		}
	}
	return 0, syntaxErr(d, len(d), "")
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanNumber checks the JSON number at d[off:] and returns where it ends;
// on failure, where it went wrong.
func scanNumber(d []byte, off int) (int, bool) {
	i := off
	digits := func() bool {
		s := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case !digits():
		return i, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if !digits() {
			return i, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if !digits() {
			return i, false
		}
	}
	return i, true
}

// span returns the container opening at off. Lookups mostly move forward
// through the text, so the one after the last found is tried first.
func (p *jsonParser) span(off int) *span {
	o := uint32(off)
	if i := p.lastSpan + 1; i < len(p.spans) && p.spans[i].off == o {
		p.lastSpan = i
		return &p.spans[i]
	}
	i, _ := slices.BinarySearchFunc(p.spans, o, func(s span, o uint32) int {
		return int(int64(s.off) - int64(o))
	})
	p.lastSpan = i
	return &p.spans[i]
}

// valueEnd returns the offset just past the value starting at off.
func (p *jsonParser) valueEnd(off int) int {
	d := p.data
	switch d[off] {
	case '{', '[':
		return int(p.span(off).end)
	case '"':
		return stringEnd(d, off)
	}
	i := off
	for i < len(d) && !isSpace(d[i]) && d[i] != ',' && d[i] != ']' && d[i] != '}' {
		i++
	}
	return i
}

// stringEnd returns the offset just past the (checked) string at off.
func stringEnd(d []byte, off int) int {
	for i := off + 1; ; i++ {
		switch d[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
}

// member is an object member: its key (quotes included) and its value.
type member struct{ key, keyEnd, val int }

// iter walks the members of an object or the elements of an array.
type iter struct {
	p   *jsonParser
	pos int
}

func (p *jsonParser) iter(off int) iter { return iter{p: p, pos: off + 1} }

// member returns the next member of an object.
func (it *iter) member() (member, bool) {
	d := it.p.data
	pos := skipSpace(d, it.pos)
	if d[pos] == ',' {
		pos = skipSpace(d, pos+1)
	}
	if d[pos] == '}' {
		return member{}, false
	}
	m := member{key: pos, keyEnd: stringEnd(d, pos)}
	pos = skipSpace(d, m.keyEnd) // at ':'
	m.val = skipSpace(d, pos+1)
	it.pos = it.p.valueEnd(m.val)
	return m, true
}

// elem returns the offset of the next element of an array.
func (it *iter) elem() (int, bool) {
	d := it.p.data
	pos := skipSpace(d, it.pos)
	if d[pos] == ',' {
		pos = skipSpace(d, pos+1)
	}
	if d[pos] == ']' {
		return 0, false
	}
	it.pos = it.p.valueEnd(pos)
	return pos, true
}

// str returns the contents of the (checked) string at off, unescaped,
// with invalid UTF-8 and lone surrogates replaced by U+FFFD (and bad
// reporting whether any were). The result aliases the input or p.sbuf:
// use it before the next call.
func (p *jsonParser) str(off int) (s []byte, bad bool) {
	raw := p.data[off+1 : stringEnd(p.data, off)-1]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return raw, false
	}
	p.sbuf, bad = unquote(p.sbuf[:0], raw)
	return p.sbuf, bad
}

// keyIs reports whether the key of m reads name.
func (p *jsonParser) keyIs(m member, name string) bool {
	raw := p.data[m.key+1 : m.keyEnd-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	k, _ := p.str(m.key)
	return string(k) == name
}

// keyElem is the key of m as a path element for an error ("" quoted, so
// that it shows).
func (p *jsonParser) keyElem(m member) string {
	k, _ := p.str(m.key)
	if len(k) == 0 {
		return `""`
	}
	return clipInput(k)
}

func (p *jsonParser) describe(off int) string {
	switch p.data[off] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// isRequest reports whether the object at off has both "uuid" and "args".
func (p *jsonParser) isRequest(off int) bool {
	uuid, args, _ := p.classify(off)
	return uuid && args
}

// classify reports which of the keys "uuid", "args" and "as_file" the
// object at off has.
func (p *jsonParser) classify(off int) (uuid, args, asFile bool) {
	it := p.iter(off)
	for m, ok := it.member(); ok; m, ok = it.member() {
		switch {
		case p.keyIs(m, "uuid"):
			uuid = true
		case p.keyIs(m, "args"):
			args = true
		case p.keyIs(m, "as_file"):
			asFile = true
		}
	}
	return uuid, args, asFile
}
