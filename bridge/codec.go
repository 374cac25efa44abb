package bridge

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/arbor-rpc/arbor/arborproto"
)

// frame is one message on its way through the bridge. A request holds
// the argument array a function takes, [bin(protobuf)], built while the
// codec copies the message out of connect's buffer (so it is copied once);
// a response holds protobuf bytes.
type frame struct{ b []byte }

// args is the function's msgpack argument array holding the message.
func (f *frame) args() []byte { return f.b }

// msg is the message as one msgpack bin (a stream message).
func (f *frame) msg() []byte { return f.b[1:] }

// setRequest copies data in as [bin(data)].
func (f *frame) setRequest(data []byte) {
	b := make([]byte, 0, 1+5+len(data))
	b = append(b, 0x91) // an array of one argument
	b = arborproto.AppendBinHeader(b, len(data))
	f.b = append(b, data...)
}

// binaryCodec passes protobuf binary through unparsed: the function
// decodes it, once. Other messages (connect's own: the google.rpc.Status
// of an error with details) are marshaled as protobuf.
type binaryCodec struct{}

func (binaryCodec) Name() string { return "proto" }

func (c binaryCodec) Marshal(v any) ([]byte, error) { return c.MarshalAppend(nil, v) }

func (binaryCodec) MarshalAppend(dst []byte, v any) ([]byte, error) {
	switch m := v.(type) {
	case *frame:
		return append(dst, m.b...), nil
	case proto.Message:
		return proto.MarshalOptions{}.MarshalAppend(dst, m)
	}
	return nil, fmt.Errorf("bridge: cannot marshal %T as protobuf", v)
}

func (binaryCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *frame:
		m.setRequest(data)
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("bridge: cannot unmarshal protobuf into %T", v)
}

// jsonCodec converts between protojson and the binary the function
// speaks, with the method's message types.
type jsonCodec struct {
	in, out protoreflect.MessageType
}

func (*jsonCodec) Name() string { return "json" }

func (c *jsonCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		if pm, ok := v.(proto.Message); ok { // connect's own messages
			return protojson.Marshal(pm)
		}
		return nil, fmt.Errorf("bridge: cannot marshal %T as JSON", v)
	}
	m := c.out.New().Interface()
	if err := proto.Unmarshal(f.b, m); err != nil {
		return nil, fmt.Errorf("converting %s to JSON: %w", c.out.Descriptor().FullName(), err)
	}
	return protojson.Marshal(m)
}

func (c *jsonCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		if pm, ok := v.(proto.Message); ok {
			return protojson.Unmarshal(data, pm)
		}
		return fmt.Errorf("bridge: cannot unmarshal JSON into %T", v)
	}
	m := c.in.New().Interface()
	if len(data) > 0 { // Connect GET and empty bodies mean an empty message
		if err := protojson.Unmarshal(data, m); err != nil {
			return fmt.Errorf("reading %s from JSON: %w", c.in.Descriptor().FullName(), err)
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	f.setRequest(b)
	return nil
}

// messageType is the Go type of md if linked in, else a dynamic one.
func (h *Handler) messageType(md protoreflect.MessageDescriptor) protoreflect.MessageType {
	if mt, err := h.cfg.Types.FindMessageByName(md.FullName()); err == nil {
		return mt
	}
	return dynamicpb.NewMessageType(md)
}
