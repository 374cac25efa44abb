// Package value is Arbor's value model: how Go values are encoded as
// msgpack for arguments and results, and how any msgpack value is checked,
// converted to and from JSON, and named for introspection.
//
// How Go types map to msgpack:
//
//   - bool, integers, floats and strings are msgpack's own types; an
//     integer decodes into any Go integer type it fits ("integer 300
//     overflows int8" otherwise), and a float with an integral value
//     decodes into an integer (JSON callers cannot tell them apart).
//   - []byte and [N]byte are bin; a nil []byte is nil. time.Time is the
//     msgpack timestamp extension, and decodes from an RFC 3339 string too.
//   - Slices and arrays are arrays; maps are maps, their keys sorted by
//     encoding so equal maps encode to equal bytes (content keys depend
//     on it). Integer-keyed maps also decode from string keys ("3").
//   - A pointer is its element, or nil; nil decodes into nil pointers,
//     slices, maps and interfaces, and is an error for anything else
//     ("expected PutReq, got nil").
//   - A struct is a map from field names to values. A field's name is its
//     msgpack tag, else its json tag (so types shared with JSON APIs work
//     unchanged), else its Go name; "-" leaves it out, "omitempty" leaves
//     out zero values. Unexported fields are not sent. Fields of embedded
//     structs are promoted, as in encoding/json. Decoding matches keys to
//     names exactly, then case-insensitively (as encoding/json does, so
//     JSON typed by hand in the CLI decodes), and skips keys that name no
//     field, so peers with older or newer versions of a type interoperate.
//   - any holds what ReadAny returns: nil, bool, int64, uint64 (above
//     MaxInt64 only), float64, string, []byte, []any, map[string]any,
//     time.Time.
//   - Types that implement Marshaler and Unmarshaler encode themselves;
//     the root package's capabilities (*Ref, *Service) do, so they may sit
//     anywhere inside a value.
//   - Channels, functions, unsafe pointers, complex numbers, interfaces
//     with methods and structs with no exported fields cannot be carried:
//     Check (and registering a function that uses them) says so.
//
// Plain types (integers, floats, bool, string, []byte) have hand-written
// encoders and decoders that allocate nothing beyond the value itself;
// other types are encoded by a plan worked out once per type.
//
// Decoding never trusts a count: a container's length is checked against
// the bytes left (each element takes at least one) and Limits, and the
// whole decode against an allocation budget (Limits.MaxAlloc, by default
// 16 times the input plus 64 KiB). Errors name the field path, the Go
// type expected, what was found and the byte offset:
// "field Items[1].Name: expected string, got bool (at byte 31)".
//
// It is not a schema system: a Go type is the schema.
package value

import (
	"encoding/binary"
	"math"
)

// Limits bound what a decoder will build from untrusted bytes.
type Limits struct {
	MaxDepth  int // nesting of arrays and maps
	MaxLength int // elements in one array or map, bytes in one string
	// MaxAlloc bounds the bytes decoding one value into a Go type may
	// allocate. Zero: 16 times the encoded size plus 64 KiB (at most
	// MaxDecodeBytes).
	MaxAlloc int64

	alias bool // set by Reader.AliasBytes: []byte values are slices of the input
}

// DefaultLimits are used where none are given.
var DefaultLimits = Limits{MaxDepth: 64, MaxLength: 1 << 24}

// AppendNil appends a msgpack nil.
func AppendNil(b []byte) []byte { return append(b, 0xc0) }

// AppendBool appends a msgpack bool.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 0xc3)
	}
	return append(b, 0xc2)
}

// AppendInt appends the shortest msgpack integer for v.
func AppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return AppendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// AppendUint appends the shortest msgpack integer for v.
func AppendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// AppendFloat64 appends a msgpack float64.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(v))
}

// AppendFloat32 appends a msgpack float32.
func AppendFloat32(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(v))
}

// AppendString appends a msgpack str.
func AppendString(b []byte, s string) []byte {
	return append(AppendStringHeader(b, len(s)), s...)
}

// AppendStringHeader appends the header of an n-byte msgpack str: the
// caller writes its bytes next (or sends them from where they lie).
func AppendStringHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
}

// AppendBytes appends a msgpack bin.
func AppendBytes(b []byte, v []byte) []byte {
	return append(AppendBytesHeader(b, len(v)), v...)
}

// AppendBytesHeader appends the header of an n-byte msgpack bin: the
// caller writes its bytes next (or sends them from where they lie).
func AppendBytesHeader(b []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
}

// AppendArrayHeader appends the header of an n-element msgpack array.
func AppendArrayHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

// AppendMapHeader appends the header of an n-entry msgpack map.
func AppendMapHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, 0xdf), uint32(n))
}
