package request

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/arbor-rpc/arbor/value"
)

// Canonical returns the canonical msgpack encoding of the single value in
// b: integers in their shortest form (non-negative ones as unsigned),
// strings, binaries, arrays and maps with their shortest headers, map
// entries sorted by the bytes of their canonical keys. Floats keep their
// width; nil, bools and floats are unchanged. It returns b itself when b is
// already canonical, a new slice otherwise.
//
// It fails on anything but exactly one well-formed value, on extension
// types, on duplicate map keys, and past value.DefaultLimits.
func Canonical(b []byte) ([]byte, error) { return canonical(b, value.DefaultLimits) }

func canonical(b []byte, lim value.Limits) ([]byte, error) {
	end, ok, err := scanCanon(b, 0, 0, lim)
	if err != nil {
		return nil, err
	}
	if end != len(b) {
		return nil, &value.Error{Offset: end, Msg: fmt.Sprintf("%d trailing byte(s) after the value", len(b)-end)}
	}
	if ok {
		return b, nil
	}
	// The canonical encoding is never longer than the input: shortest
	// headers, the same entries in another order.
	c := canonWriter{out: make([]byte, 0, len(b))}
	if _, err := c.value(b, 0, 0, lim); err != nil {
		return nil, err
	}
	return c.out, nil
}

// checkValue checks that b is one well-formed value within lim.
func checkValue(b []byte, lim value.Limits) error {
	if b == nil {
		return &value.Error{Offset: 0, Msg: "missing value"}
	}
	end, _, err := scanCanon(b, 0, 0, lim)
	if err != nil {
		return err
	}
	if end != len(b) {
		return &value.Error{Offset: end, Msg: fmt.Sprintf("%d trailing byte(s) after the value", len(b)-end)}
	}
	return nil
}

// head is a decoded msgpack header.
type head struct {
	kind  value.Kind
	hlen  int    // header bytes
	n     int    // payload bytes (str, bin, float, ext) or element count (array, map)
	u     uint64 // integer magnitude bits (as read)
	neg   bool   // integer is negative (u holds it as int64 bits)
	canon bool   // the header is the shortest for its value
}

func canonErr(off int, format string, args ...any) error {
	return &value.Error{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// readHead decodes the header at b[off:].
func readHead(b []byte, off int) (head, error) {
	if off >= len(b) {
		return head{}, canonErr(off, "expected a value, got end of input")
	}
	c := b[off]
	switch {
	case c <= 0x7f:
		return head{kind: value.KindUint, hlen: 1, u: uint64(c), canon: true}, nil
	case c >= 0xe0:
		return head{kind: value.KindInt, hlen: 1, u: uint64(int64(int8(c))), neg: true, canon: true}, nil
	case c <= 0x8f:
		return head{kind: value.KindMap, hlen: 1, n: int(c & 0x0f), canon: true}, nil
	case c <= 0x9f:
		return head{kind: value.KindArray, hlen: 1, n: int(c & 0x0f), canon: true}, nil
	case c <= 0xbf:
		return head{kind: value.KindString, hlen: 1, n: int(c & 0x1f), canon: true}, nil
	}
	w := headWidth[c-0xc0]
	if len(b)-off < 1+w {
		if c == 0xc1 || (c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8) {
			return readHeadSlow(b, off)
		}
		return head{}, canonErr(off, "truncated value: need %d bytes, have %d", 1+w, len(b)-off)
	}
	var x uint64
	switch w {
	case 1:
		x = uint64(b[off+1])
	case 2:
		x = uint64(binary.BigEndian.Uint16(b[off+1:]))
	case 4:
		x = uint64(binary.BigEndian.Uint32(b[off+1:]))
	case 8:
		x = binary.BigEndian.Uint64(b[off+1:])
	}
	switch c {
	case 0xc0:
		return head{kind: value.KindNil, hlen: 1, canon: true}, nil
	case 0xc2, 0xc3:
		return head{kind: value.KindBool, hlen: 1, canon: true}, nil
	case 0xc4, 0xc5, 0xc6:
		return head{kind: value.KindBytes, hlen: 1 + w, n: int(x), canon: w == 1 || (w == 2 && x > 0xff) || (w == 4 && x > 0xffff)}, nil
	case 0xd9, 0xda, 0xdb:
		return head{kind: value.KindString, hlen: 1 + w, n: int(x), canon: (w == 1 && x > 31) || (w == 2 && x > 0xff) || (w == 4 && x > 0xffff)}, nil
	case 0xca:
		return head{kind: value.KindFloat, hlen: 1, n: 4, canon: true}, nil
	case 0xcb:
		return head{kind: value.KindFloat, hlen: 1, n: 8, canon: true}, nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		return head{kind: value.KindUint, hlen: 1 + w, u: x, canon: uintLen(x) == 1+w}, nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		shift := uint(64 - 8*w)
		v := int64(x<<shift) >> shift // sign-extend
		if v >= 0 {
			return head{kind: value.KindUint, hlen: 1 + w, u: uint64(v), canon: false}, nil
		}
		return head{kind: value.KindInt, hlen: 1 + w, u: uint64(v), neg: true, canon: intLen(v) == 1+w}, nil
	case 0xdc, 0xdd:
		return head{kind: value.KindArray, hlen: 1 + w, n: int(x), canon: (w == 2 && x > 15) || (w == 4 && x > 0xffff)}, nil
	case 0xde, 0xdf:
		return head{kind: value.KindMap, hlen: 1 + w, n: int(x), canon: (w == 2 && x > 15) || (w == 4 && x > 0xffff)}, nil
	}
	return readHeadSlow(b, off)
}

// headWidth is the width of the length or value field after type bytes
// 0xc0…0xdf (0 for those without one, and for the unsupported ones).
var headWidth = [32]int{
	0xc4 - 0xc0: 1, 0xc5 - 0xc0: 2, 0xc6 - 0xc0: 4,
	0xca - 0xc0: 4, 0xcb - 0xc0: 8,
	0xcc - 0xc0: 1, 0xcd - 0xc0: 2, 0xce - 0xc0: 4, 0xcf - 0xc0: 8,
	0xd0 - 0xc0: 1, 0xd1 - 0xc0: 2, 0xd2 - 0xc0: 4, 0xd3 - 0xc0: 8,
	0xd9 - 0xc0: 1, 0xda - 0xc0: 2, 0xdb - 0xc0: 4,
	0xdc - 0xc0: 2, 0xdd - 0xc0: 4, 0xde - 0xc0: 2, 0xdf - 0xc0: 4,
}

// readHeadSlow reports the type bytes readHead does not accept.
func readHeadSlow(b []byte, off int) (head, error) {
	c := b[off]
	if (c >= 0xc7 && c <= 0xc9) || (c >= 0xd4 && c <= 0xd8) {
		return head{}, canonErr(off, "msgpack extension types are not supported")
	}
	return head{}, canonErr(off, "invalid msgpack type byte 0x%02x", c)
}

func uintLen(u uint64) int {
	switch {
	case u <= 0x7f:
		return 1
	case u <= math.MaxUint8:
		return 2
	case u <= math.MaxUint16:
		return 3
	case u <= math.MaxUint32:
		return 5
	}
	return 9
}

func intLen(v int64) int {
	switch {
	case v >= -32:
		return 1
	case v >= math.MinInt8:
		return 2
	case v >= math.MinInt16:
		return 3
	case v >= math.MinInt32:
		return 5
	}
	return 9
}

// scanCanon walks the value at b[off:], returning where it ends and
// whether it is canonical.
func scanCanon(b []byte, off, depth int, lim value.Limits) (int, bool, error) {
	if depth > lim.MaxDepth {
		return off, false, canonErr(off, "nesting deeper than %d", lim.MaxDepth)
	}
	h, err := readHead(b, off)
	if err != nil {
		return off, false, err
	}
	start := off
	off += h.hlen
	canon := h.canon
	switch h.kind {
	case value.KindString, value.KindBytes, value.KindFloat:
		if h.n > lim.MaxLength && h.kind != value.KindFloat {
			return start, false, canonErr(start, "%s length %d exceeds limit %d", h.kind, h.n, lim.MaxLength)
		}
		if len(b)-off < h.n {
			return start, false, canonErr(start, "truncated %s: need %d bytes, have %d", h.kind, h.n, len(b)-off)
		}
		return off + h.n, canon, nil
	case value.KindArray, value.KindMap:
		per := 1
		if h.kind == value.KindMap {
			per = 2
		}
		if h.n > lim.MaxLength || h.n > (len(b)-off)/per {
			return start, false, canonErr(start, "%s of %d elements does not fit in the %d bytes left (or exceeds the limit %d)", h.kind, h.n, len(b)-off, lim.MaxLength)
		}
		var prevKey []byte
		for i := 0; i < h.n*per; i++ {
			kstart := off
			end, ok, err := scanCanon(b, off, depth+1, lim)
			if err != nil {
				return start, false, err
			}
			canon = canon && ok
			if h.kind == value.KindMap && i%2 == 0 {
				k := b[kstart:end]
				if prevKey != nil && bytes.Compare(prevKey, k) >= 0 {
					canon = false // unsorted or duplicate: the re-encoding decides
				}
				prevKey = k
			}
			off = end
		}
		return off, canon, nil
	}
	return off, canon, nil
}

// canonWriter re-encodes msgpack values in canonical form into out. A
// map's entries are written in the order they come and then, if that is
// not sorted, reordered in place through tmp, so a value nested many maps
// deep is copied once per level into the same scratch rather than into a
// new buffer per level: the memory it takes stays a small multiple of the
// value's size. Its buffers are reused from one value to the next.
type canonWriter struct {
	out  []byte
	tmp  []byte
	ents []mapEntry
}

// mapEntry locates one map entry in canonWriter.out: key at [k, v), value
// at [v, end); i is its place in the input.
type mapEntry struct{ k, v, end, i int }

// value appends the canonical encoding of the value at b[off:] to c.out
// and returns the offset just past it in b.
func (c *canonWriter) value(b []byte, off, depth int, lim value.Limits) (int, error) {
	if depth > lim.MaxDepth {
		return off, canonErr(off, "nesting deeper than %d", lim.MaxDepth)
	}
	h, err := readHead(b, off)
	if err != nil {
		return off, err
	}
	start := off
	off += h.hlen
	switch h.kind {
	case value.KindNil, value.KindBool:
		c.out = append(c.out, b[start])
		return off, nil
	case value.KindUint:
		c.out = value.AppendUint(c.out, h.u)
		return off, nil
	case value.KindInt:
		c.out = value.AppendInt(c.out, int64(h.u))
		return off, nil
	case value.KindFloat:
		if len(b)-off < h.n {
			return start, canonErr(start, "truncated float")
		}
		c.out = append(c.out, b[start:off+h.n]...)
		return off + h.n, nil
	case value.KindString, value.KindBytes:
		if h.n > lim.MaxLength || len(b)-off < h.n {
			return start, canonErr(start, "bad %s length %d", h.kind, h.n)
		}
		p := b[off : off+h.n]
		if h.kind == value.KindString {
			c.out = appendStrHeader(c.out, len(p))
		} else {
			c.out = appendBinHeader(c.out, len(p))
		}
		c.out = append(c.out, p...)
		return off + h.n, nil
	case value.KindArray:
		if h.n > lim.MaxLength || h.n > len(b)-off {
			return start, canonErr(start, "bad array length %d", h.n)
		}
		c.out = value.AppendArrayHeader(c.out, h.n)
		for i := 0; i < h.n; i++ {
			if off, err = c.value(b, off, depth+1, lim); err != nil {
				return off, err
			}
		}
		return off, nil
	case value.KindMap:
		if h.n > lim.MaxLength || h.n > (len(b)-off)/2 {
			return start, canonErr(start, "bad map length %d", h.n)
		}
		c.out = value.AppendMapHeader(c.out, h.n)
		base := len(c.out)
		sorted := true
		pk, pv := 0, 0
		for i := 0; i < h.n; i++ {
			k := len(c.out)
			if off, err = c.value(b, off, depth+1, lim); err != nil {
				return off, err
			}
			v := len(c.out)
			if off, err = c.value(b, off, depth+1, lim); err != nil {
				return off, err
			}
			if i > 0 && sorted && bytes.Compare(c.out[pk:pv], c.out[k:v]) >= 0 {
				sorted = false
			}
			pk, pv = k, v
		}
		if !sorted {
			if _, dup := c.sortMap(base, h.n, lim); dup {
				return start, canonErr(start, "duplicate map key")
			}
		}
		return off, nil
	}
	return start, canonErr(start, "unexpected %s", h.kind)
}

// sortMap sorts the n entries of the map written at c.out[base:] by their
// key bytes. It reports dup (and the input place of the later one) when
// two keys are equal.
func (c *canonWriter) sortMap(base, n int, lim value.Limits) (i int, dup bool) {
	ents := slices.Grow(c.ents[:0], n)
	pos := base
	for i := range n {
		k := pos
		v, _, _ := scanCanon(c.out, pos, 0, lim) // written by c: well formed
		end, _, _ := scanCanon(c.out, v, 0, lim)
		ents = append(ents, mapEntry{k: k, v: v, end: end, i: i})
		pos = end
	}
	c.ents = ents[:0]
	slices.SortFunc(ents, func(x, y mapEntry) int { return bytes.Compare(c.out[x.k:x.v], c.out[y.k:y.v]) })
	for j := 1; j < len(ents); j++ {
		if bytes.Equal(c.out[ents[j-1].k:ents[j-1].v], c.out[ents[j].k:ents[j].v]) {
			return max(ents[j-1].i, ents[j].i), true
		}
	}
	c.tmp = append(c.tmp[:0], c.out[base:pos]...)
	w := base
	for _, e := range ents {
		w += copy(c.out[w:], c.tmp[e.k-base:e.end-base])
	}
	return 0, false
}

// appendStrHeader appends the shortest str header for n bytes.
func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xda, byte(n>>8), byte(n))
	}
	return append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendBinHeader appends the shortest bin header for n bytes.
func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xc5, byte(n>>8), byte(n))
	}
	return append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}
