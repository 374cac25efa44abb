package wire

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// Hello is the first frame each side sends. Limits are what the sender is
// willing to receive; each side uses the smaller of the two.
type Hello struct {
	Version       uint16
	MaxFrame      uint32        // largest payload the sender accepts
	MaxConcurrent uint32        // calls the sender serves at once (0 = no limit)
	KeepAlive     time.Duration // ping interval the sender proposes (0 = off)
	// StreamWindow and ConnWindow are the stream-message bytes the sender
	// will buffer per stream and per connection before the peer must wait
	// for CREDIT (0 = the default).
	StreamWindow uint32
	ConnWindow   uint32
}

var helloMagic = [4]byte{'A', 'R', 'B', 'R'}

const helloSize = 4 + 2 + 4 + 4 + 4 + 4 + 4

// AppendHello appends a HELLO frame.
func AppendHello(dst []byte, h Hello) []byte {
	dst = AppendHeader(dst, Header{Length: helloSize, Type: TypeHello})
	dst = append(dst, helloMagic[:]...)
	dst = binary.BigEndian.AppendUint16(dst, h.Version)
	dst = binary.BigEndian.AppendUint32(dst, h.MaxFrame)
	dst = binary.BigEndian.AppendUint32(dst, h.MaxConcurrent)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.KeepAlive/time.Millisecond))
	dst = binary.BigEndian.AppendUint32(dst, h.StreamWindow)
	return binary.BigEndian.AppendUint32(dst, h.ConnWindow)
}

// ParseHello decodes a HELLO payload. Trailing bytes are allowed so that a
// later version can add fields.
func ParseHello(p []byte) (Hello, error) {
	if len(p) < helloSize {
		return Hello{}, &Error{Frame: TypeHello, Offset: len(p), Msg: fmt.Sprintf("payload is %d bytes, want at least %d", len(p), helloSize)}
	}
	if [4]byte(p[0:4]) != helloMagic {
		return Hello{}, &Error{Frame: TypeHello, Offset: 0, Msg: fmt.Sprintf("bad magic %q, not an Arbor peer", p[0:4])}
	}
	return Hello{
		Version:       binary.BigEndian.Uint16(p[4:6]),
		MaxFrame:      binary.BigEndian.Uint32(p[6:10]),
		MaxConcurrent: binary.BigEndian.Uint32(p[10:14]),
		KeepAlive:     time.Duration(binary.BigEndian.Uint32(p[14:18])) * time.Millisecond,
		StreamWindow:  binary.BigEndian.Uint32(p[18:22]),
		ConnWindow:    binary.BigEndian.Uint32(p[22:26]),
	}, nil
}

// MD is one metadata key/value pair.
type MD struct{ Key, Value string }

func appendMetadata(dst []byte, md []MD) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(md)))
	for _, kv := range md {
		dst = binary.AppendUvarint(dst, uint64(len(kv.Key)))
		dst = append(dst, kv.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(kv.Value)))
		dst = append(dst, kv.Value...)
	}
	return dst
}

// ParseMetadata decodes encoded metadata (as found in Call.Metadata),
// appending to dst. It allocates only the strings it returns (and, when
// dst is empty and the metadata small, one block for the pairs and their
// strings together).
func ParseMetadata(dst []MD, b []byte) ([]MD, error) {
	if len(dst) == 0 && cap(dst) == 0 {
		md, _, err := parseFresh(b)
		return md, err
	}
	d := decoder{p: b, frame: TypeCall}
	n, err := d.metadataCount()
	if err != nil {
		return dst, err
	}
	return parseMetadata(&d, dst, n)
}

// parseFresh parses b into new memory: small metadata into one block
// (mdsmall.go, blk set), any other a string per key and value.
func parseFresh(b []byte) (md []MD, blk *mdBlock, err error) {
	d := decoder{p: b, frame: TypeCall}
	n, err := d.metadataCount()
	if err != nil {
		return nil, nil, err
	}
	if blk, ok, err := parseSmallMetadata(&d, b, n); ok {
		if err != nil {
			return nil, nil, err
		}
		return blk.md(), blk, nil
	}
	md, err = parseMetadata(&d, nil, n)
	return md, nil, err
}

// metadataCount reads the number of pairs of the metadata d holds.
func (d *decoder) metadataCount() (uint64, error) {
	n, err := d.uvarint("metadata count")
	if err != nil {
		return 0, err
	}
	// Each pair takes at least two bytes, so n is bounded by len(p) before
	// anything is sized by it.
	if n > uint64(len(d.p)/2) {
		return 0, d.errorf("metadata count %d exceeds what %d bytes can hold", n, len(d.p))
	}
	return n, nil
}

// parseMetadata appends the n pairs d holds to dst, a string each.
func parseMetadata(d *decoder, dst []MD, n uint64) ([]MD, error) {
	dst = slices.Grow(dst, int(n))
	for i := uint64(0); i < n; i++ {
		k, err := d.bytes("metadata key", MaxMetadata)
		if err != nil {
			return dst, err
		}
		v, err := d.bytes("metadata value", MaxMetadata)
		if err != nil {
			return dst, err
		}
		dst = append(dst, MD{Key: string(k), Value: string(v)})
	}
	return dst, nil
}

func (d *decoder) skipMetadata() error {
	start := d.off
	n, err := d.uvarint("metadata count")
	if err != nil {
		return err
	}
	if n > uint64(len(d.p)-d.off)/2 {
		return d.errorf("metadata count %d exceeds what remains of the frame", n)
	}
	for i := uint64(0); i < n; i++ {
		if _, err := d.bytes("metadata key", MaxMetadata); err != nil {
			return err
		}
		if _, err := d.bytes("metadata value", MaxMetadata); err != nil {
			return err
		}
	}
	if d.off-start > MaxMetadata {
		return d.errorf("metadata is %d bytes, limit %d", d.off-start, MaxMetadata)
	}
	return nil
}

// ErrorPayload is a decoded ERROR payload.
type ErrorPayload struct {
	Code      uint32
	Retryable bool
	// Category is the error's broad kind (a small number the status
	// package assigns; 0 = none). Up to 127.
	Category uint8
	Message  []byte
	Details  []byte
}

// FlagMetadata on a RESULT or ERROR frame means its payload starts with a
// metadata block (the callee's trailers), as AppendMetadata writes it.
const FlagMetadata uint8 = 2

// AppendMetadata appends a metadata block: a count, then length-prefixed
// keys and values.
func AppendMetadata(dst []byte, md []MD) []byte { return appendMetadata(dst, md) }

// SplitMetadata splits a leading metadata block off p.
func SplitMetadata(t Type, p []byte) (md, rest []byte, err error) {
	d := decoder{p: p, frame: t}
	if err := d.skipMetadata(); err != nil {
		return nil, nil, err
	}
	return p[:d.off], p[d.off:], nil
}

// AppendError appends an ERROR frame, with trailers when md is not empty.
func AppendError(dst []byte, id uint64, e ErrorPayload, md ...MD) []byte {
	var flags uint8
	if len(md) > 0 {
		flags = FlagMetadata
	}
	dst, at := BeginFrame(dst, TypeError, flags, id)
	if len(md) > 0 {
		dst = appendMetadata(dst, md)
	}
	dst = binary.AppendUvarint(dst, uint64(e.Code))
	// One byte: bit 0 retryable, bits 1..7 the category.
	r := (e.Category & 0x7f) << 1
	if e.Retryable {
		r |= 1
	}
	dst = append(dst, r)
	dst = binary.AppendUvarint(dst, uint64(len(e.Message)))
	dst = append(dst, e.Message...)
	dst = append(dst, e.Details...)
	EndFrame(dst, at)
	return dst
}

// ParseError decodes an ERROR payload.
func ParseError(p []byte) (ErrorPayload, error) {
	d := decoder{p: p, frame: TypeError}
	var e ErrorPayload
	c, err := d.uvarint("code")
	if err != nil {
		return e, err
	}
	if c > 1<<31 {
		return e, d.errorf("code %d out of range", c)
	}
	e.Code = uint32(c)
	b, err := d.byte1("flags")
	if err != nil {
		return e, err
	}
	e.Retryable = b&1 == 1
	e.Category = b >> 1
	if e.Message, err = d.bytes("message", len(p)); err != nil {
		return e, err
	}
	e.Details = p[d.off:]
	return e, nil
}

// GoAway is a decoded GOAWAY payload: the sender will serve no call with an
// id above LastID, and will close once those it accepted are done.
type GoAway struct {
	LastID  uint64
	Code    uint32
	Message []byte
}

// AppendGoAway appends a GOAWAY frame.
func AppendGoAway(dst []byte, g GoAway) []byte {
	dst, at := BeginFrame(dst, TypeGoAway, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, g.LastID)
	dst = binary.AppendUvarint(dst, uint64(g.Code))
	dst = append(dst, g.Message...)
	EndFrame(dst, at)
	return dst
}

// ParseGoAway decodes a GOAWAY payload.
func ParseGoAway(p []byte) (GoAway, error) {
	d := decoder{p: p, frame: TypeGoAway}
	var g GoAway
	if len(p) < 8 {
		return g, d.errorf("payload is %d bytes, want at least 8", len(p))
	}
	g.LastID = binary.BigEndian.Uint64(p)
	d.off = 8
	c, err := d.uvarint("code")
	if err != nil {
		return g, err
	}
	if c > 1<<31 {
		return g, d.errorf("code %d out of range", c)
	}
	g.Code = uint32(c)
	g.Message = p[d.off:]
	return g, nil
}

// AppendPing appends a PING (or, with pong, a PONG) frame with 8 bytes of
// opaque data that the peer echoes back.
func AppendPing(dst []byte, pong bool, data uint64) []byte {
	t := TypePing
	if pong {
		t = TypePong
	}
	dst = AppendHeader(dst, Header{Length: 8, Type: t})
	return binary.BigEndian.AppendUint64(dst, data)
}

// ParsePing decodes a PING or PONG payload.
func ParsePing(t Type, p []byte) (uint64, error) {
	if len(p) != 8 {
		return 0, &Error{Frame: t, Offset: len(p), Msg: fmt.Sprintf("payload is %d bytes, want 8", len(p))}
	}
	return binary.BigEndian.Uint64(p), nil
}

// decoder walks a payload, naming the field and offset of anything wrong.
type decoder struct {
	p     []byte
	off   int
	frame Type
}

func (d *decoder) errorf(format string, args ...any) error {
	return &Error{Frame: d.frame, Offset: HeaderSize + d.off, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.p[d.off:])
	if n <= 0 {
		if n == 0 {
			return 0, d.errorf("%s: truncated varint", what)
		}
		return 0, d.errorf("%s: varint overflows 64 bits", what)
	}
	d.off += n
	return v, nil
}

func (d *decoder) byte1(what string) (byte, error) {
	if d.off >= len(d.p) {
		return 0, d.errorf("%s: missing", what)
	}
	b := d.p[d.off]
	d.off++
	return b, nil
}

// bytes reads a length-prefixed field without copying it.
func (d *decoder) bytes(what string, max int) ([]byte, error) {
	v, k := binary.Uvarint(d.p[d.off:])
	if k <= 0 {
		return nil, d.errorf("%s length: bad varint", what) // built only on error: no allocation per field
	}
	d.off += k
	n := v
	if n > uint64(max) {
		return nil, d.errorf("%s length %d exceeds limit %d", what, n, max)
	}
	if n > uint64(len(d.p)-d.off) {
		return nil, d.errorf("%s length %d exceeds the %d bytes left in the frame", what, n, len(d.p)-d.off)
	}
	b := d.p[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// FlagCapability on a RELEASE frame means the id is an export (a
// capability) and the payload is a uvarint count of references dropped;
// without it the id is a retained call answer and the payload is empty.
const FlagCapability uint8 = 1

// AppendRelease appends a RELEASE frame: of a retained answer (n == 0) or
// of n references to export id.
func AppendRelease(dst []byte, id uint64, n uint32) []byte {
	if n == 0 {
		return AppendHeader(dst, Header{Type: TypeRelease, ID: id})
	}
	dst, at := BeginFrame(dst, TypeRelease, FlagCapability, id)
	dst = binary.AppendUvarint(dst, uint64(n))
	EndFrame(dst, at)
	return dst
}

// AppendCredit appends a CREDIT frame granting n more bytes of stream
// messages on stream id (0: the whole connection).
func AppendCredit(dst []byte, id uint64, n uint32) []byte {
	dst, at := BeginFrame(dst, TypeCredit, 0, id)
	dst = binary.AppendUvarint(dst, uint64(n))
	EndFrame(dst, at)
	return dst
}

// ParseCredit decodes a CREDIT payload.
func ParseCredit(p []byte) (uint32, error) { return parseCount(p, TypeCredit, "credit") }

// ParseRelease decodes the payload of a RELEASE frame with
// FlagCapability: the count of references dropped.
func ParseRelease(p []byte) (uint32, error) { return parseCount(p, TypeRelease, "reference count") }

// parseCount decodes a payload that is one count of 1..2^31.
func parseCount(p []byte, t Type, what string) (uint32, error) {
	d := decoder{p: p, frame: t}
	n, err := d.uvarint(what)
	if err != nil {
		return 0, err
	}
	if n == 0 || n > 1<<31 {
		return 0, d.errorf("%s %d out of range (1..2^31)", what, n)
	}
	if d.off != len(p) {
		return 0, d.errorf("%d trailing bytes", len(p)-d.off)
	}
	return uint32(n), nil
}
