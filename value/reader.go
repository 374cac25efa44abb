package value

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Kind is the broad msgpack type of a value, used in error messages.
type Kind uint8

// Kinds.
const (
	KindInvalid Kind = iota
	KindNil
	KindBool
	KindInt
	KindUint
	KindFloat
	KindString
	KindBytes
	KindArray
	KindMap
	KindExt
)

// Both integer kinds read as "int" in messages: the sign is msgpack's detail.
var kindNames = [...]string{"invalid", "nil", "bool", "int", "int", "float", "string", "bytes", "array", "map", "extension"}

func (k Kind) String() string { return kindNames[k] }

// Error is a decoding error: where in the Go value (Path, such as
// "Items[3].Name"), what was expected and what was found (Msg), and the
// byte offset in the encoded value.
type Error struct {
	Path   string
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("field %s: %s (at byte %d)", e.Path, e.Msg, e.Offset)
	}
	return fmt.Sprintf("%s (at byte %d)", e.Msg, e.Offset)
}

// Reader decodes msgpack values from a byte slice.
type Reader struct {
	b   []byte
	off int
	lim Limits // lim.alias: ReadBytes returns slices of b (AliasBytes)
}

// AliasBytes makes ReadBytes (and so []byte values) return slices of the
// input instead of copies: no copy of a large blob. Only for input that
// its owner hands over for good, never to be reused or changed.
func (r *Reader) AliasBytes() { r.lim.alias = true }

// NewReader returns a reader over b with the default limits.
func NewReader(b []byte) Reader { return Reader{b: b, lim: DefaultLimits} }

// Reset points r at b.
func (r *Reader) Reset(b []byte) { r.b, r.off = b, 0; r.lim = DefaultLimits }

// Offset is the number of bytes consumed.
func (r *Reader) Offset() int { return r.off }

// Rest returns the bytes not yet consumed.
func (r *Reader) Rest() []byte { return r.b[r.off:] }

func (r *Reader) errorf(format string, args ...any) error {
	return &Error{Offset: r.off, Msg: fmt.Sprintf(format, args...)}
}

// PeekKind reports the kind of the next value without consuming it.
func (r *Reader) PeekKind() Kind {
	if r.off >= len(r.b) {
		return KindInvalid
	}
	return kindOf(r.b[r.off])
}

func kindOf(c byte) Kind {
	switch {
	case c <= 0x7f, c >= 0xe0:
		if c <= 0x7f {
			return KindUint
		}
		return KindInt
	case c <= 0x8f:
		return KindMap
	case c <= 0x9f:
		return KindArray
	case c <= 0xbf:
		return KindString
	}
	switch c {
	case 0xc0:
		return KindNil
	case 0xc2, 0xc3:
		return KindBool
	case 0xc4, 0xc5, 0xc6:
		return KindBytes
	case 0xca, 0xcb:
		return KindFloat
	case 0xcc, 0xcd, 0xce, 0xcf:
		return KindUint
	case 0xd0, 0xd1, 0xd2, 0xd3:
		return KindInt
	case 0xd9, 0xda, 0xdb:
		return KindString
	case 0xdc, 0xdd:
		return KindArray
	case 0xde, 0xdf:
		return KindMap
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		return KindExt
	}
	return KindInvalid
}

func (r *Reader) need(n int, what string) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, r.errorf("%s: need %d bytes, %d left", what, n, len(r.b)-r.off)
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *Reader) mismatch(want string) error {
	if r.off >= len(r.b) {
		return r.errorf("expected %s, got end of input", want)
	}
	return r.errorf("expected %s, got %s", want, kindOf(r.b[r.off]))
}

// ReadNil consumes a nil, reporting whether one was there.
func (r *Reader) ReadNil() bool {
	if r.off < len(r.b) && r.b[r.off] == 0xc0 {
		r.off++
		return true
	}
	return false
}

// ReadBool reads a bool.
func (r *Reader) ReadBool() (bool, error) {
	if r.off < len(r.b) {
		switch r.b[r.off] {
		case 0xc2:
			r.off++
			return false, nil
		case 0xc3:
			r.off++
			return true, nil
		}
	}
	return false, r.mismatch("bool")
}

// ReadInt reads any msgpack integer that fits an int64. A float with an
// integral value is accepted too, since JSON callers cannot tell them apart.
func (r *Reader) ReadInt() (int64, error) {
	if r.off >= len(r.b) {
		return 0, r.mismatch("int")
	}
	start := r.off
	c := r.b[r.off]
	switch {
	case c <= 0x7f:
		r.off++
		return int64(c), nil
	case c >= 0xe0:
		r.off++
		return int64(int8(c)), nil
	}
	r.off++
	var p []byte
	var err error
	switch c {
	case 0xcc, 0xd0:
		p, err = r.need(1, "int")
	case 0xcd, 0xd1:
		p, err = r.need(2, "int")
	case 0xce, 0xd2, 0xca:
		p, err = r.need(4, "int")
	case 0xcf, 0xd3, 0xcb:
		p, err = r.need(8, "int")
	default:
		r.off = start
		return 0, r.mismatch("int")
	}
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xcc:
		return int64(p[0]), nil
	case 0xcd:
		return int64(binary.BigEndian.Uint16(p)), nil
	case 0xce:
		return int64(binary.BigEndian.Uint32(p)), nil
	case 0xcf:
		u := binary.BigEndian.Uint64(p)
		if u > math.MaxInt64 {
			r.off = start
			return 0, r.errorf("integer %d overflows int64", u)
		}
		return int64(u), nil
	case 0xd0:
		return int64(int8(p[0])), nil
	case 0xd1:
		return int64(int16(binary.BigEndian.Uint16(p))), nil
	case 0xd2:
		return int64(int32(binary.BigEndian.Uint32(p))), nil
	case 0xd3:
		return int64(binary.BigEndian.Uint64(p)), nil
	}
	var f float64
	if c == 0xca {
		f = float64(math.Float32frombits(binary.BigEndian.Uint32(p)))
	} else {
		f = math.Float64frombits(binary.BigEndian.Uint64(p))
	}
	if f != math.Trunc(f) {
		r.off = start
		return 0, r.errorf("expected int, got non-integral float %v", f)
	}
	if f < math.MinInt64 || f >= math.MaxInt64 {
		r.off = start
		return 0, r.errorf("integer %.0f overflows int64", f)
	}
	return int64(f), nil
}

// ReadUint reads a non-negative integer.
func (r *Reader) ReadUint() (uint64, error) {
	if r.off < len(r.b) && r.b[r.off] == 0xcf {
		p, err := r.need(9, "uint")
		if err != nil {
			return 0, err
		}
		return binary.BigEndian.Uint64(p[1:]), nil
	}
	start := r.off
	v, err := r.ReadInt()
	if err != nil {
		return 0, err
	}
	if v < 0 {
		r.off = start
		return 0, r.errorf("expected uint, got negative %d", v)
	}
	return uint64(v), nil
}

// ReadFloat reads a float or an integer as float64.
func (r *Reader) ReadFloat() (float64, error) {
	if r.off < len(r.b) {
		switch r.b[r.off] {
		case 0xca:
			p, err := r.need(5, "float")
			if err != nil {
				return 0, err
			}
			return float64(math.Float32frombits(binary.BigEndian.Uint32(p[1:]))), nil
		case 0xcb:
			p, err := r.need(9, "float")
			if err != nil {
				return 0, err
			}
			return math.Float64frombits(binary.BigEndian.Uint64(p[1:])), nil
		}
		switch kindOf(r.b[r.off]) {
		case KindInt:
			v, err := r.ReadInt()
			return float64(v), err
		case KindUint:
			v, err := r.ReadUint()
			return float64(v), err
		}
	}
	return 0, r.mismatch("float")
}

// readLen reads a str/bin header, returning the payload length.
func (r *Reader) readStrBin(want string) ([]byte, error) {
	if r.off >= len(r.b) {
		return nil, r.mismatch(want)
	}
	start := r.off
	c := r.b[r.off]
	r.off++
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		p, err := r.need(1, want)
		if err != nil {
			return nil, err
		}
		n = int(p[0])
	case c == 0xda || c == 0xc5:
		p, err := r.need(2, want)
		if err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint16(p))
	case c == 0xdb || c == 0xc6:
		p, err := r.need(4, want)
		if err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint32(p))
	default:
		r.off = start
		return nil, r.mismatch(want)
	}
	if n > r.lim.MaxLength {
		r.off = start
		return nil, r.errorf("%s length %d exceeds limit %d", want, n, r.lim.MaxLength)
	}
	return r.need(n, want)
}

// ReadStringBytes reads a str (or bin) without copying: the result aliases
// the input.
func (r *Reader) ReadStringBytes() ([]byte, error) { return r.readStrBin("string") }

// ReadString reads a str (or bin) into a new string.
func (r *Reader) ReadString() (string, error) {
	p, err := r.readStrBin("string")
	return string(p), err
}

// ReadBytes reads a bin (or str) into a new slice. A nil value reads as nil.
func (r *Reader) ReadBytes() ([]byte, error) {
	if r.ReadNil() {
		return nil, nil
	}
	p, err := r.readStrBin("bytes")
	if err != nil {
		return nil, err
	}
	if r.lim.alias {
		return p[:len(p):len(p)], nil
	}
	return append(make([]byte, 0, len(p)), p...), nil
}

// ReadArrayHeader reads an array header and returns its element count,
// checked against the limit and against the bytes left (each element takes
// at least one byte).
func (r *Reader) ReadArrayHeader() (int, error) {
	return r.readContainer(0x90, 0xdc, 0xdd, "array", 1)
}

// ReadMapHeader reads a map header and returns its entry count.
func (r *Reader) ReadMapHeader() (int, error) {
	return r.readContainer(0x80, 0xde, 0xdf, "map", 2)
}

func (r *Reader) readContainer(fix, c16, c32 byte, what string, minSize int) (int, error) {
	if r.off >= len(r.b) {
		return 0, r.mismatch(what)
	}
	start := r.off
	c := r.b[r.off]
	var n int
	switch {
	case c&0xf0 == fix:
		r.off++
		n = int(c & 0x0f)
	case c == c16:
		p, err := r.need(3, what)
		if err != nil {
			return 0, err
		}
		n = int(binary.BigEndian.Uint16(p[1:]))
	case c == c32:
		p, err := r.need(5, what)
		if err != nil {
			return 0, err
		}
		n = int(binary.BigEndian.Uint32(p[1:]))
	default:
		return 0, r.mismatch(what)
	}
	if n > r.lim.MaxLength {
		r.off = start
		return 0, r.errorf("%s length %d exceeds limit %d", what, n, r.lim.MaxLength)
	}
	if n*minSize > len(r.b)-r.off {
		r.off = start
		return 0, r.errorf("%s of %d elements cannot fit in the %d bytes left", what, n, len(r.b)-r.off)
	}
	return n, nil
}

// Skip consumes one whole value of any kind and returns its bytes.
func (r *Reader) Skip() ([]byte, error) {
	start := r.off
	if err := r.skip(0); err != nil {
		return nil, err
	}
	return r.b[start:r.off], nil
}

func (r *Reader) skip(depth int) error {
	if depth > r.lim.MaxDepth {
		return r.errorf("nesting deeper than %d", r.lim.MaxDepth)
	}
	if r.off >= len(r.b) {
		return r.errorf("expected a value, got end of input")
	}
	c := r.b[r.off]
	switch kindOf(c) {
	case KindNil, KindBool:
		r.off++
		return nil
	case KindInt, KindUint:
		_, err := r.ReadInt()
		if err != nil && c == 0xcf { // uint64 over MaxInt64 is still a value
			_, err = r.ReadUint()
		}
		return err
	case KindFloat:
		_, err := r.ReadFloat()
		return err
	case KindString, KindBytes:
		_, err := r.readStrBin(kindOf(c).String())
		return err
	case KindArray:
		n, err := r.ReadArrayHeader()
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case KindMap:
		n, err := r.ReadMapHeader()
		if err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := r.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case KindExt:
		return r.skipExt()
	}
	return r.errorf("invalid msgpack type byte 0x%02x", c)
}

func (r *Reader) skipExt() error {
	c := r.b[r.off]
	var n int
	switch c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		n = 1 << (c - 0xd4)
		_, err := r.need(2+n, "ext")
		return err
	case 0xc7:
		p, err := r.need(2, "ext")
		if err != nil {
			return err
		}
		n = int(p[1])
	case 0xc8:
		p, err := r.need(3, "ext")
		if err != nil {
			return err
		}
		n = int(binary.BigEndian.Uint16(p[1:]))
	case 0xc9:
		p, err := r.need(5, "ext")
		if err != nil {
			return err
		}
		n = int(binary.BigEndian.Uint32(p[1:]))
	}
	_, err := r.need(1+n, "ext")
	return err
}
