// Package wire is Arbor's frame format: a fixed 16-byte header followed by a
// payload, the frame types, and encoders and decoders for each payload.
//
// Header layout (big endian):
//
//	0..4   payload length
//	4      frame type
//	5      flags
//	6..8   reserved, must be zero
//	8..16  call id (64 bits; never reused on a connection)
//
// Every decoder checks a length it read against what remains or against the
// negotiated limit before it allocates anything of that size, and reports
// what was wrong and at which byte offset. The frame reader, which cannot
// know what remains, grows a large payload's buffer only as its bytes
// arrive. The package does no I/O policy:
// the conn package decides what to do with a bad frame.
package wire

import (
	"encoding/binary"
	"fmt"
)

// HeaderSize is the size of every frame header.
const HeaderSize = 16

// Version is the protocol version this package speaks. Version 2 made a
// CALL's target and promise references frame fields.
const Version = 2

// Defaults and bounds for negotiated limits.
const (
	DefaultMaxFrame = 4 << 20  // 4 MiB
	MinMaxFrame     = 4 << 10  // a peer may not ask for less than 4 KiB
	MaxMaxFrame     = 1 << 30  // nor for more than 1 GiB
	MaxMetadata     = 64 << 10 // metadata bytes in one frame
)

// Type is a frame type.
type Type uint8

// Frame types.
const (
	TypeHello   Type = 1
	TypeCall    Type = 2
	TypeResult  Type = 3
	TypeError   Type = 4
	TypeCancel  Type = 5
	TypePing    Type = 6
	TypePong    Type = 7
	TypeGoAway  Type = 8
	TypeData    Type = 9  // one stream message
	TypeEnd     Type = 10 // stream half-close
	TypeCredit  Type = 11 // flow-control credit (id 0: the connection)
	TypeRelease Type = 12 // release a retained answer, or (FlagCapability) references to an export
	TypePad     Type = 13 // padding: zero bytes the receiver skips (see AppendPad)
	maxType          = TypePad
)

var typeNames = [...]string{
	TypeHello: "HELLO", TypeCall: "CALL", TypeResult: "RESULT", TypeError: "ERROR",
	TypeCancel: "CANCEL", TypePing: "PING", TypePong: "PONG", TypeGoAway: "GOAWAY",
	TypeData: "DATA", TypeEnd: "END", TypeCredit: "CREDIT", TypeRelease: "RELEASE",
	TypePad: "PAD",
}

func (t Type) String() string {
	if t >= 1 && t <= maxType {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Header is a decoded frame header.
type Header struct {
	Length uint32
	Type   Type
	Flags  uint8
	ID     uint64
}

// AppendHeader appends a header to dst.
func AppendHeader(dst []byte, h Header) []byte {
	return append(dst,
		byte(h.Length>>24), byte(h.Length>>16), byte(h.Length>>8), byte(h.Length),
		byte(h.Type), h.Flags, 0, 0,
		byte(h.ID>>56), byte(h.ID>>48), byte(h.ID>>40), byte(h.ID>>32),
		byte(h.ID>>24), byte(h.ID>>16), byte(h.ID>>8), byte(h.ID))
}

// BeginFrame appends a header with a zero length and returns the buffer and
// the header's offset; encode the payload after it, then call EndFrame.
// This lets payloads be encoded straight into the output buffer.
func BeginFrame(dst []byte, t Type, flags uint8, id uint64) ([]byte, int) {
	at := len(dst)
	return AppendHeader(dst, Header{Type: t, Flags: flags, ID: id}), at
}

// EndFrame writes the payload length of the frame begun at offset at.
func EndFrame(buf []byte, at int) {
	binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-HeaderSize))
}

// AppendFrame appends a whole frame with the given payload.
func AppendFrame(dst []byte, t Type, flags uint8, id uint64, payload []byte) []byte {
	dst = AppendHeader(dst, Header{Length: uint32(len(payload)), Type: t, Flags: flags, ID: id})
	return append(dst, payload...)
}

// AppendPad appends a PAD frame that makes the appended bytes at least
// size long (a PAD frame is never shorter than a header). A sender uses it
// to round small writes up for a transport that handles short writes
// worse than long ones (see conn); the receiver skips PAD frames.
func AppendPad(dst []byte, size int) []byte {
	n := max(size-HeaderSize, 0)
	dst = AppendHeader(dst, Header{Length: uint32(n), Type: TypePad})
	for range n {
		dst = append(dst, 0)
	}
	return dst
}

// CheckPad checks a PAD payload: all zero bytes, so that padding cannot
// carry data past an observer.
func CheckPad(p []byte) error {
	for i, b := range p {
		if b != 0 {
			return &Error{Frame: TypePad, Offset: i, Msg: fmt.Sprintf("padding byte %d is %#x, want 0", i, b)}
		}
	}
	return nil
}

// ParseHeader decodes a header from b, which must hold HeaderSize bytes.
// It rejects unknown types, non-zero reserved bytes and lengths over limit.
func ParseHeader(b []byte, limit uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, &Error{Offset: len(b), Msg: fmt.Sprintf("short header: %d of %d bytes", len(b), HeaderSize)}
	}
	h := Header{
		Length: binary.BigEndian.Uint32(b[0:4]),
		Type:   Type(b[4]),
		Flags:  b[5],
		ID:     binary.BigEndian.Uint64(b[8:16]),
	}
	if h.Type < 1 || h.Type > maxType {
		return h, &Error{Frame: h.Type, Offset: 4, Msg: fmt.Sprintf("unknown frame type %d", b[4])}
	}
	if b[6] != 0 || b[7] != 0 {
		return h, &Error{Frame: h.Type, Offset: 6, Msg: "reserved header bytes are not zero"}
	}
	if h.Length > limit {
		return h, &Error{Frame: h.Type, Offset: 0, Msg: fmt.Sprintf("frame length %d exceeds limit %d", h.Length, limit), TooLarge: true}
	}
	return h, nil
}

// Error is a malformed-frame error: which frame, which byte offset within
// the header or payload, and what was wrong.
type Error struct {
	Frame    Type
	Offset   int
	Msg      string
	TooLarge bool // the frame was over the negotiated size limit
}

func (e *Error) Error() string {
	if e.Frame == 0 {
		return fmt.Sprintf("wire: %s (at byte %d)", e.Msg, e.Offset)
	}
	return fmt.Sprintf("wire: %s frame: %s (at byte %d)", e.Frame, e.Msg, e.Offset)
}
