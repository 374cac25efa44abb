package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
	"github.com/arbor-rpc/arbor/value"
)

// protoView prints the messages of a function generated from a .proto as
// protojson, from the schema the server describes it with (no .proto at
// hand): they travel as protobuf binary, which would print as base64.
type protoView struct {
	out   protoreflect.MessageType
	types *dynamicpb.Types // for Any fields
}

// protoViewOf asks the server for fn's schema; nil (print as usual) when
// fn is not a generated function or the server has no schema function.
func protoViewOf(ctx context.Context, c arbor.Caller, fn string) *protoView {
	if !strings.HasPrefix(fn, "/") {
		return nil
	}
	s, err := arbor.Call1[*arborproto.Schema](ctx, c, arborproto.SchemaFunction, fn)
	if err != nil || s == nil {
		return nil
	}
	files, err := arborproto.Files(s.Files)
	if err != nil {
		return nil
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(s.Output))
	if err != nil {
		return nil
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil
	}
	return &protoView{out: dynamicpb.NewMessageType(md), types: dynamicpb.NewTypes(files)}
}

// view returns x (a result or stream message) as protojson, or x itself
// without a schema.
func (v *protoView) view(x any) (any, error) {
	if v == nil {
		return x, nil
	}
	var b []byte
	switch y := x.(type) {
	case nil:
	case []byte:
		b = y
	case string:
		b = []byte(y)
	default:
		return x, nil
	}
	m := v.out.New().Interface()
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, arbor.Errorf(arbor.InvalidArgument, "the result is not a valid %s: %v", v.out.Descriptor().FullName(), err)
	}
	js, err := protojson.MarshalOptions{Resolver: v.types}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("printing %s as JSON: %w", v.out.Descriptor().FullName(), err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, js); err != nil { // protojson varies its spacing on purpose
		return nil, err
	}
	return json.RawMessage(out.Bytes()), nil
}

// viewMsgpack returns a msgpack-encoded result (a bin of protobuf, or
// nil) as protojson, and whether it was one.
func (v *protoView) viewMsgpack(res []byte) ([]byte, bool, error) {
	if v == nil {
		return nil, false, nil
	}
	r := value.NewReader(res)
	var b []byte
	switch r.PeekKind() {
	case value.KindNil:
	case value.KindBytes:
		var err error
		if b, err = r.ReadStringBytes(); err != nil {
			return nil, false, nil
		}
	default:
		return nil, false, nil
	}
	js, err := v.view(b)
	if err != nil {
		return nil, true, err
	}
	return js.(json.RawMessage), true, nil
}
