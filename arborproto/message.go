package arborproto

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/arbor-rpc/arbor/value"
)

// marshal is deterministic so that equal messages encode to equal bytes:
// request-tree content keys are hashes of the encoded arguments.
var marshal = proto.MarshalOptions{Deterministic: true}

// marshalSized reuses the size Size just computed (UseCachedSize): the
// message is walked twice, never encoded twice.
var marshalSized = proto.MarshalOptions{Deterministic: true, UseCachedSize: true}

// MaxRecursion bounds the nesting of messages decoded from peers.
const MaxRecursion = 100

var unmarshal = proto.UnmarshalOptions{RecursionLimit: MaxRecursion}

// AppendMessage appends m as a msgpack bin holding its deterministic
// protobuf encoding, marshalled in place after the bin header (no
// intermediate buffer). A nil message appends msgpack nil.
func AppendMessage(b []byte, m proto.Message) ([]byte, error) {
	if isNil(m) {
		return value.AppendNil(b), nil
	}
	n := marshal.Size(m)
	b = AppendBinHeader(b, n)
	start := len(b)
	b, err := marshalSized.MarshalAppend(b, m)
	if err != nil {
		return b[:start], fmt.Errorf("encoding %s as protobuf: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if len(b)-start != n {
		return b[:start], fmt.Errorf("encoding %s as protobuf: the message changed while it was encoded (%d bytes, then %d)",
			m.ProtoReflect().Descriptor().FullName(), n, len(b)-start)
	}
	return b, nil
}

// AppendBinHeader appends the msgpack header of a bin of n bytes.
func AppendBinHeader(b []byte, n int) []byte {
	switch {
	case n < 1<<8:
		return append(b, 0xc4, byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
}

// ReadMessage reads one value into m: a bin (or str) holds protobuf
// binary; a map is a message given as JSON (the CLI, Cradle JSON trees),
// read as protojson; nil leaves m empty. Errors name the message and, for
// malformed protobuf, the field and byte offset where decoding failed.
func ReadMessage(r *value.Reader, m proto.Message) error {
	switch r.PeekKind() {
	case value.KindNil:
		r.ReadNil()
		proto.Reset(m)
		return nil
	case value.KindBytes, value.KindString:
		b, err := r.ReadStringBytes() // aliases the frame: Unmarshal copies what it keeps
		if err != nil {
			return err
		}
		return Unmarshal(b, m)
	case value.KindMap:
		start := r.Offset()
		v, err := r.ReadAny()
		if err != nil {
			return err
		}
		js, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("%s given as a map: %w (at byte %d)", name(m), err, start)
		}
		if err := protojson.Unmarshal(js, m); err != nil {
			// protojson places its error at a line:column of the JSON made
			// here from the map, which the sender never saw: the map's
			// offset in the arguments says where instead.
			msg := protojsonPos.ReplaceAllString(err.Error(), "")
			return fmt.Errorf("%s given as a map (read as protojson): %s (in the map at byte %d)", name(m), msg, start)
		}
		return nil
	}
	return fmt.Errorf("expected %s (protobuf binary in a bin, or a map read as protojson), got %s (at byte %d)", name(m), r.PeekKind(), r.Offset())
}

// Unmarshal decodes protobuf binary into m, which it resets first. On
// malformed input the error names the field and byte offset where the
// encoding breaks.
func Unmarshal(b []byte, m proto.Message) error {
	if err := unmarshal.Unmarshal(b, m); err != nil {
		return decodeError(b, m, err)
	}
	return nil
}

// protojsonPos is the position protojson's errors give, "(line 1:12): ".
var protojsonPos = regexp.MustCompile(`\(line \d+:\d+\): `)

func name(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

// Of carries a protobuf message of another Go package (one generated code
// cannot add methods to, such as the well-known types) as an Arbor value:
// the same bytes on the wire as a generated message.
type Of[M proto.Message] struct{ Msg M }

// AppendMsgpack implements value.Marshaler.
func (o Of[M]) AppendMsgpack(b []byte, _ any) ([]byte, error) {
	if isNil(o.Msg) {
		return value.AppendNil(b), nil
	}
	return AppendMessage(b, o.Msg)
}

// ReadMsgpack implements value.Unmarshaler; nil reads as a nil Msg.
func (o *Of[M]) ReadMsgpack(r *value.Reader, _ any) error {
	if r.PeekKind() == value.KindNil {
		r.ReadNil()
		var zero M
		o.Msg = zero
		return nil
	}
	var zero M
	m := zero.ProtoReflect().New().Interface().(M) // generated messages answer ProtoReflect on nil
	if err := ReadMessage(r, m); err != nil {
		return err
	}
	o.Msg = m
	return nil
}

func isNil(m proto.Message) bool { return m == nil || !m.ProtoReflect().IsValid() }
