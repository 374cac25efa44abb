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
	out, _, err := appendCanon(make([]byte, 0, len(b)), b, 0, 0, lim)
	return out, err
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

// appendCanon appends the canonical encoding of the value at b[off:].
func appendCanon(dst, b []byte, off, depth int, lim value.Limits) ([]byte, int, error) {
	if depth > lim.MaxDepth {
		return dst, off, canonErr(off, "nesting deeper than %d", lim.MaxDepth)
	}
	h, err := readHead(b, off)
	if err != nil {
		return dst, off, err
	}
	start := off
	off += h.hlen
	switch h.kind {
	case value.KindNil, value.KindBool:
		return append(dst, b[start]), off, nil
	case value.KindUint:
		return value.AppendUint(dst, h.u), off, nil
	case value.KindInt:
		return value.AppendInt(dst, int64(h.u)), off, nil
	case value.KindFloat:
		if len(b)-off < h.n {
			return dst, start, canonErr(start, "truncated float")
		}
		return append(dst, b[start:off+h.n]...), off + h.n, nil
	case value.KindString, value.KindBytes:
		if h.n > lim.MaxLength || len(b)-off < h.n {
			return dst, start, canonErr(start, "bad %s length %d", h.kind, h.n)
		}
		p := b[off : off+h.n]
		if h.kind == value.KindString {
			dst = value.AppendString(dst, string(p))
		} else {
			dst = value.AppendBytes(dst, p)
		}
		return dst, off + h.n, nil
	case value.KindArray:
		if h.n > lim.MaxLength || h.n > len(b)-off {
			return dst, start, canonErr(start, "bad array length %d", h.n)
		}
		dst = value.AppendArrayHeader(dst, h.n)
		for i := 0; i < h.n; i++ {
			if dst, off, err = appendCanon(dst, b, off, depth+1, lim); err != nil {
				return dst, off, err
			}
		}
		return dst, off, nil
	case value.KindMap:
		if h.n > lim.MaxLength || h.n > (len(b)-off)/2 {
			return dst, start, canonErr(start, "bad map length %d", h.n)
		}
		type entry struct{ k, v []byte }
		entries := make([]entry, h.n)
		for i := range entries {
			var k, v []byte
			if k, off, err = appendCanon(nil, b, off, depth+1, lim); err != nil {
				return dst, off, err
			}
			if v, off, err = appendCanon(nil, b, off, depth+1, lim); err != nil {
				return dst, off, err
			}
			entries[i] = entry{k, v}
		}
		slices.SortFunc(entries, func(x, y entry) int { return bytes.Compare(x.k, y.k) })
		for i := 1; i < len(entries); i++ {
			if bytes.Equal(entries[i-1].k, entries[i].k) {
				return dst, start, canonErr(start, "duplicate map key")
			}
		}
		dst = value.AppendMapHeader(dst, h.n)
		for _, e := range entries {
			dst = append(dst, e.k...)
			dst = append(dst, e.v...)
		}
		return dst, off, nil
	}
	return dst, start, canonErr(start, "unexpected %s", h.kind)
}
