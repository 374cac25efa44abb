package arborproto_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/arbor-rpc/arbor/arborproto"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/value"
)

// FuzzReadMessage feeds arbitrary msgpack to the proto decode path
// (protobuf binary in a bin, protojson in a map) of a nested message and
// of one with maps and recursion: no panic, and what decodes re-encodes
// to something that decodes to the same message.
func FuzzReadMessage(f *testing.F) {
	rect, _ := arborproto.AppendMessage(nil, &pb.Rectangle{Lo: &pb.Point{Latitude: 1, Longitude: -1}, Hi: &pb.Point{Latitude: 2}})
	f.Add(rect)
	st, _ := structpb.NewStruct(map[string]any{"a": []any{1.0, "x", map[string]any{"b": true}}, "n": nil})
	sb, _ := arborproto.AppendMessage(nil, st)
	f.Add(sb)
	js, _ := value.AppendAny(nil, map[string]any{"lo": map[string]any{"latitude": int64(5)}})
	f.Add(js)
	f.Add([]byte{0xc4, 0x02, 0x08, 0xff})
	f.Add([]byte{0xc4, 0x04, 0x0a, 0x02, 0x08, 0xff})
	f.Add([]byte{0xc6, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xc0})
	f.Add([]byte{0x81, 0xa2, 'l', 'o', 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&pb.Rectangle{}, &structpb.Struct{}} {
			r := value.NewReader(b)
			if err := arborproto.ReadMessage(&r, m); err != nil {
				continue
			}
			again, err := arborproto.AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("%T decoded but does not encode: %v", m, err)
			}
			m2 := m.ProtoReflect().New().Interface()
			r2 := value.NewReader(again)
			if err := arborproto.ReadMessage(&r2, m2); err != nil || !proto.Equal(m, m2) {
				t.Fatalf("%T: re-encoding does not decode to the same message: %v", m, err)
			}
		}
	})
}
