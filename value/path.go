package value

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendExt appends a msgpack extension value of type t with data.
func AppendExt(b []byte, t int8, data []byte) []byte {
	n := len(data)
	switch {
	case n == 1:
		b = append(b, 0xd4)
	case n == 2:
		b = append(b, 0xd5)
	case n == 4:
		b = append(b, 0xd6)
	case n == 8:
		b = append(b, 0xd7)
	case n == 16:
		b = append(b, 0xd8)
	case n <= math.MaxUint8:
		b = append(b, 0xc7, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc8), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc9), uint32(n))
	}
	b = append(b, byte(t))
	return append(b, data...)
}

// ReadExt reads an extension value, returning its type and data (aliasing
// the input).
func (r *Reader) ReadExt() (int8, []byte, error) {
	if r.off >= len(r.b) || kindOf(r.b[r.off]) != KindExt {
		return 0, nil, r.mismatch("ext")
	}
	start := r.off
	if err := r.skipExt(); err != nil {
		return 0, nil, err
	}
	raw := r.b[start:r.off]
	var hdr int
	switch raw[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		hdr = 1
	case 0xc7:
		hdr = 2
	case 0xc8:
		hdr = 3
	case 0xc9:
		hdr = 5
	}
	return int8(raw[hdr]), raw[hdr+1:], nil
}

// Select returns the encoded value found by following path into the
// encoded value b: a string selects a map entry by key, an integer an
// array element. An empty path returns b.
func Select(b []byte, path []any) ([]byte, error) {
	r := NewReader(b)
	for depth, seg := range path {
		switch s := seg.(type) {
		case string:
			n, err := r.ReadMapHeader()
			if err != nil {
				return nil, fmt.Errorf("path element %d (%q): %w", depth, s, err)
			}
			found := false
			for i := 0; i < n; i++ {
				k, err := r.Skip()
				if err != nil {
					return nil, err
				}
				kr := NewReader(k)
				if key, err := kr.ReadStringBytes(); err == nil && string(key) == s {
					found = true
					break
				}
				if _, err := r.Skip(); err != nil {
					return nil, err
				}
			}
			if !found {
				return nil, fmt.Errorf("path element %d: no field %q", depth, s)
			}
		default:
			idx, ok := toIndex(seg)
			if !ok {
				return nil, fmt.Errorf("path element %d: %v is neither a field name nor an index", depth, seg)
			}
			n, err := r.ReadArrayHeader()
			if err != nil {
				return nil, fmt.Errorf("path element %d ([%d]): %w", depth, idx, err)
			}
			if idx < 0 || idx >= n {
				return nil, fmt.Errorf("path element %d: index %d out of range [0,%d)", depth, idx, n)
			}
			for i := 0; i < idx; i++ {
				if _, err := r.Skip(); err != nil {
					return nil, err
				}
			}
		}
	}
	return r.Skip()
}

func toIndex(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), x <= math.MaxInt32
	}
	return 0, false
}

// Walk calls ext for the type of every extension value inside the encoded
// value b (to find capabilities in a result, say). Malformed input ends
// the walk.
func Walk(b []byte, ext func(t int8)) {
	r := NewReader(b)
	var walk func(depth int) bool
	walk = func(depth int) bool {
		if depth > r.lim.MaxDepth || r.off >= len(r.b) {
			return false
		}
		switch kindOf(r.b[r.off]) {
		case KindArray:
			n, err := r.ReadArrayHeader()
			if err != nil {
				return false
			}
			for i := 0; i < n; i++ {
				if !walk(depth + 1) {
					return false
				}
			}
			return true
		case KindMap:
			n, err := r.ReadMapHeader()
			if err != nil {
				return false
			}
			for i := 0; i < 2*n; i++ {
				if !walk(depth + 1) {
					return false
				}
			}
			return true
		case KindExt:
			t, _, err := r.ReadExt()
			if err != nil {
				return false
			}
			ext(t)
			return true
		}
		_, err := r.Skip()
		return err == nil
	}
	walk(0)
}

// RewriteExt appends b to dst with every extension value for which fn
// returns a replacement (an encoded value) replaced by it, and the rest
// copied as is: how a capability index is renumbered when a value moves
// from one message's table to another's. Malformed input is an error.
func RewriteExt(dst, b []byte, fn func(t int8, data []byte) ([]byte, error)) ([]byte, error) {
	r := NewReader(b)
	last := 0
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > r.lim.MaxDepth {
			return r.errorf("nesting deeper than %d", r.lim.MaxDepth)
		}
		if r.off >= len(r.b) {
			return r.errorf("expected a value, got end of input")
		}
		switch kindOf(r.b[r.off]) {
		case KindArray, KindMap:
			n, err := 0, error(nil)
			if kindOf(r.b[r.off]) == KindArray {
				n, err = r.ReadArrayHeader()
			} else {
				n, err = r.ReadMapHeader()
				n *= 2
			}
			if err != nil {
				return err
			}
			for i := 0; i < n; i++ {
				if err := walk(depth + 1); err != nil {
					return err
				}
			}
			return nil
		case KindExt:
			start := r.off
			t, data, err := r.ReadExt()
			if err != nil {
				return err
			}
			repl, err := fn(t, data)
			if err != nil {
				return err
			}
			if repl != nil {
				dst = append(dst, b[last:start]...)
				dst = append(dst, repl...)
				last = r.off
			}
			return nil
		}
		_, err := r.Skip()
		return err
	}
	if err := walk(0); err != nil {
		return dst, err
	}
	if r.off != len(b) {
		return dst, r.errorf("%d byte(s) after the value", len(b)-r.off)
	}
	return append(dst, b[last:]...), nil
}
