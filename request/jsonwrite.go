package request

import (
	"encoding/base64"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// maxWriteDepth guards the writers against a cyclic tree built in Go.
const maxWriteDepth = 1 << 12

// MarshalJSON writes n in Cradle's JSON form (see AppendJSON).
func (n *Node) MarshalJSON() ([]byte, error) { return AppendJSON(nil, n) }

// AppendJSON appends n in Cradle's JSON form, compact: "uuid", "title",
// "args" as {"tuple_element0": …}, then "base_millis" and "max_attempts"
// when n.Retry is set. Values are written as with AppendValueJSON.
// ParseJSON reads the output back into an equal tree, keys included.
func AppendJSON(b []byte, n *Node) ([]byte, error) { return appendNodeJSON(b, n, 0) }

func appendNodeJSON(b []byte, n *Node, depth int) ([]byte, error) {
	if n == nil {
		return b, status.New(status.InvalidArgument, "request is nil")
	}
	if depth > maxWriteDepth {
		return b, status.Errorf(status.InvalidArgument, "request nested deeper than %d (a cycle?)", maxWriteDepth)
	}
	if n.err != nil {
		return b, n.err
	}
	b = append(b, `{"uuid":`...)
	b = appendJSONString(b, n.ID)
	b = append(b, `,"title":`...)
	b = appendJSONString(b, n.Title)
	b = append(b, `,"args":{`...)
	for i, a := range n.Args {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `"tuple_element`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `":`...)
		var err error
		if a.Node != nil {
			b, err = appendNodeJSON(b, a.Node, depth+1)
		} else if why := misread(a.Value); why != "" {
			// ParseJSON would read it back as something else: data would
			// become a call or a blob.
			return b, status.Errorf(status.InvalidArgument, "%s: args.tuple_element%d: %s has no Cradle JSON form", n.ID, i, why)
		} else {
			b, err = AppendValueJSON(b, a.Value)
		}
		if err != nil {
			return b, err
		}
	}
	b = append(b, '}')
	if n.Retry != (RetryHint{}) {
		b = append(b, `,"base_millis":`...)
		b = strconv.AppendInt(b, n.Retry.BaseMillis, 10)
		b = append(b, `,"max_attempts":`...)
		b = strconv.AppendInt(b, n.Retry.MaxAttempts, 10)
	}
	return append(b, '}'), nil
}

// AppendValueJSON appends one msgpack value as JSON, the way ParseJSON
// reads values back: bin as a Cradle blob {"as_file":false,"size":N,
// "blob":"<base64>"}, maps as objects, integral floats with a ".0" so they
// stay floats. Map keys that are not strings are written as their JSON
// text in a string. NaN and infinities have no JSON form and are an error,
// as are extension types and malformed input, and map keys nested more
// than maxKeyNesting deep in other non-string keys (each level quotes the
// one inside again, doubling its backslashes: the output would grow
// exponentially with the input).
func AppendValueJSON(b, msgpack []byte) ([]byte, error) {
	out, end, err := appendValueJSON(b, msgpack, 0, 0, 0)
	if err != nil {
		return b, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, "writing a value as JSON")
	}
	if end != len(msgpack) {
		return b, status.Errorf(status.InvalidArgument, "writing a value as JSON: %d trailing byte(s) after the value", len(msgpack)-end)
	}
	return out, nil
}

// maxKeyNesting bounds how deep non-string map keys nest in one another
// in AppendValueJSON.
const maxKeyNesting = 2

// appendValueJSON writes the value at b[off:]; keys is how many
// non-string map keys it is inside.
func appendValueJSON(dst, b []byte, off, depth, keys int) ([]byte, int, error) {
	if depth > value.DefaultLimits.MaxDepth {
		return dst, off, canonErr(off, "nesting deeper than %d", value.DefaultLimits.MaxDepth)
	}
	h, err := readHead(b, off)
	if err != nil {
		return dst, off, err
	}
	start := off
	off += h.hlen
	switch h.kind {
	case value.KindNil:
		return append(dst, "null"...), off, nil
	case value.KindBool:
		return strconv.AppendBool(dst, b[start] == 0xc3), off, nil
	case value.KindUint:
		return strconv.AppendUint(dst, h.u, 10), off, nil
	case value.KindInt:
		return strconv.AppendInt(dst, int64(h.u), 10), off, nil
	case value.KindFloat:
		var f float64
		bits := 64
		if h.n == 4 {
			f = float64(math.Float32frombits(uint32(be(b[off : off+4]))))
			bits = 32
		} else {
			f = math.Float64frombits(be(b[off : off+8]))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, start, canonErr(start, "%v has no JSON form", f)
		}
		s := len(dst)
		dst = strconv.AppendFloat(dst, f, 'g', -1, bits)
		integral := true
		for _, c := range dst[s:] {
			if c == '.' || c == 'e' || c == 'E' {
				integral = false
			}
		}
		if integral {
			dst = append(dst, ".0"...)
		}
		return dst, off + h.n, nil
	case value.KindString, value.KindBytes:
		if len(b)-off < h.n {
			return dst, start, canonErr(start, "truncated %s", h.kind)
		}
		p := b[off : off+h.n]
		if h.kind == value.KindString {
			dst = appendJSONString(dst, string(p))
		} else {
			dst = append(dst, `{"as_file":false,"size":`...)
			dst = strconv.AppendInt(dst, int64(len(p)), 10)
			dst = append(dst, `,"blob":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, p)
			dst = append(dst, `"}`...)
		}
		return dst, off + h.n, nil
	case value.KindArray:
		if h.n > len(b)-off {
			return dst, start, canonErr(start, "array of %d elements does not fit", h.n)
		}
		dst = append(dst, '[')
		for i := 0; i < h.n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, off, err = appendValueJSON(dst, b, off, depth+1, keys); err != nil {
				return dst, off, err
			}
		}
		return append(dst, ']'), off, nil
	case value.KindMap:
		if h.n > (len(b)-off)/2 {
			return dst, start, canonErr(start, "map of %d entries does not fit", h.n)
		}
		dst = append(dst, '{')
		for i := 0; i < h.n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			kh, err := readHead(b, off)
			if err != nil {
				return dst, off, err
			}
			if kh.kind == value.KindString {
				if dst, off, err = appendValueJSON(dst, b, off, depth+1, keys); err != nil {
					return dst, off, err
				}
			} else {
				if keys >= maxKeyNesting {
					return dst, off, canonErr(off, "a map key (%s) inside %d other non-string map keys has no JSON form (at most %d)", kh.kind, keys, maxKeyNesting)
				}
				var k []byte
				if k, off, err = appendValueJSON(nil, b, off, depth+1, keys+1); err != nil {
					return dst, off, err
				}
				dst = appendJSONString(dst, string(k))
			}
			dst = append(dst, ':')
			if dst, off, err = appendValueJSON(dst, b, off, depth+1, keys); err != nil {
				return dst, off, err
			}
		}
		return append(dst, '}'), off, nil
	}
	return dst, start, canonErr(start, "unexpected %s", h.kind)
}

// misread says how ParseJSON would misread the JSON of the msgpack
// value b, an argument ("": it would not): a map with the keys "uuid"
// and "args" reads as a request (a subrequest as the argument itself,
// an error inside a value), the argument itself with "uuid" alone as a
// broken request, and a map with the key "as_file" as a blob.
func misread(b []byte) string {
	_, why := misreadAt(b, 0, 0)
	return why
}

// misreadAt is misread of the value at off, depth containers down; it
// returns the value's end.
func misreadAt(b []byte, off, depth int) (int, string) {
	h, err := readHead(b, off)
	if err != nil || depth > maxWriteDepth || (h.kind != value.KindMap && h.kind != value.KindArray) {
		end, _, _ := scanCanon(b, off, 0, value.DefaultLimits)
		return end, ""
	}
	at := off + h.hlen
	uuid, args := false, false
	for i := 0; i < h.n; i++ {
		if h.kind == value.KindMap {
			kh, err := readHead(b, at)
			if err != nil {
				return len(b), ""
			}
			if kh.kind == value.KindString && len(b)-at-kh.hlen >= kh.n {
				switch string(b[at+kh.hlen : at+kh.hlen+kh.n]) {
				case "uuid":
					uuid = true
				case "args":
					args = true
				case "as_file":
					return len(b), `a map with the key "as_file" (it reads as a blob)`
				}
			}
			if at, _, err = scanCanon(b, at, 0, value.DefaultLimits); err != nil {
				return len(b), ""
			}
		}
		var why string
		if at, why = misreadAt(b, at, depth+1); why != "" {
			return at, why
		}
	}
	switch {
	case uuid && args:
		return at, `a map with the keys "uuid" and "args" (it reads as a request)`
	case uuid && depth == 0:
		return at, `a map with the key "uuid" (as an argument it reads as a request missing its "args")`
	}
	return at, ""
}

func be(p []byte) uint64 {
	var v uint64
	for _, x := range p {
		v = v<<8 | uint64(x)
	}
	return v
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
