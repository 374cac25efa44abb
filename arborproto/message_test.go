package arborproto_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
	"github.com/arbor-rpc/arbor/arbortest"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/value"
)

func read[M proto.Message](t *testing.T, b []byte, m M) error {
	t.Helper()
	r := value.NewReader(b)
	err := arborproto.ReadMessage(&r, m)
	if err == nil && len(r.Rest()) != 0 {
		t.Fatalf("%d bytes left", len(r.Rest()))
	}
	return err
}

func TestRoundTripIsProtobufInABin(t *testing.T) {
	f := &pb.Feature{Name: "x", Location: &pb.Point{Latitude: 1, Longitude: -2}}
	b, err := arborproto.AppendMessage([]byte{0xAA}, f)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	if b[0] != 0xAA || b[1] != 0xc4 || int(b[2]) != len(want) || !bytes.Equal(b[3:], want) {
		t.Fatalf("encoded %x; want aa c4 %02x %x", b, len(want), want)
	}
	var got pb.Feature
	if err := read(t, b[1:], &got); err != nil || !proto.Equal(&got, f) {
		t.Fatalf("decoded %v, %v", &got, err)
	}
	// Long messages take the 16- and 32-bit bin headers.
	for _, n := range []int{300, 70000} {
		big := &pb.Feature{Name: strings.Repeat("n", n)}
		b, err := arborproto.AppendMessage(nil, big)
		if err != nil {
			t.Fatal(err)
		}
		var got pb.Feature
		if err := read(t, b, &got); err != nil || got.GetName() != big.GetName() {
			t.Fatalf("%d-byte name: %v", n, err)
		}
	}
	// nil is msgpack nil, and reads as an empty message.
	if b, _ := arborproto.AppendMessage(nil, (*pb.Point)(nil)); !bytes.Equal(b, []byte{0xc0}) {
		t.Fatalf("nil encoded as %x", b)
	}
	p := &pb.Point{Latitude: 5}
	if err := read(t, []byte{0xc0}, p); err != nil || p.GetLatitude() != 0 {
		t.Fatalf("nil read as %v, %v", p, err)
	}
}

// Deterministic marshalling: equal messages give equal bytes (content
// keys of request trees depend on it), map order notwithstanding.
func TestDeterministic(t *testing.T) {
	m := map[string]any{}
	for i := range 50 {
		m[strings.Repeat("k", i+1)] = float64(i)
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := arborproto.AppendMessage(nil, s)
	for range 20 {
		s2, _ := structpb.NewStruct(m) // a new map: another iteration order
		b, _ := arborproto.AppendMessage(nil, s2)
		if !bytes.Equal(b, first) {
			t.Fatal("two encodings of equal messages differ")
		}
	}
}

func TestReadMessageForms(t *testing.T) {
	// A msgpack map is protojson (the CLI, Cradle JSON trees).
	js, _ := value.AppendAny(nil, map[string]any{"name": "n", "location": map[string]any{"latitude": int64(3)}})
	var f pb.Feature
	if err := read(t, js, &f); err != nil || f.GetName() != "n" || f.GetLocation().GetLatitude() != 3 {
		t.Fatalf("map: %v, %v", &f, err)
	}
	bad, _ := value.AppendAny(nil, map[string]any{"nmae": "n"})
	if err := read(t, bad, &f); err == nil || !strings.Contains(err.Error(), `unknown field "nmae"`) || !strings.Contains(err.Error(), "routeguide.Feature") {
		t.Fatalf("misspelt field: %v", err)
	} else if strings.Contains(err.Error(), "(line ") || !strings.Contains(err.Error(), "in the map at byte 0") {
		// A line:column of the JSON made from the map means nothing to
		// the sender: the map's offset does.
		t.Fatalf("misspelt field: %v; want the map's offset, not protojson's line:column", err)
	}
	// A str holding protobuf is accepted too (some msgpack encoders
	// write bytes as str).
	raw, _ := proto.Marshal(&pb.Point{Longitude: 9})
	var p pb.Point
	if err := read(t, value.AppendString(nil, string(raw)), &p); err != nil || p.GetLongitude() != 9 {
		t.Fatalf("str: %v, %v", &p, err)
	}
	if err := read(t, value.AppendInt(nil, 7), &p); err == nil || !strings.Contains(err.Error(), "expected routeguide.Point") {
		t.Fatalf("an int: %v", err)
	}
}

// Malformed protobuf: the error names the message, the field and the
// byte offset.
func TestDecodeErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		m    proto.Message
		want string
	}{
		{"truncated varint", []byte{0x08, 0xff}, &pb.Point{}, "invalid protobuf for routeguide.Point: field latitude (1) at byte 0"},
		{"nested", []byte{0x0a, 0x02, 0x08, 0xff}, &pb.Rectangle{}, "invalid protobuf for routeguide.Rectangle: field lo (1): field latitude (1) at byte 2"},
		{"length past the end", []byte{0x12, 0x09, 0x08}, &pb.Rectangle{}, "field hi (2) at byte 0"},
		{"bad tag", []byte{0x80}, &pb.Point{}, "bad field tag at byte 0"},
		{"invalid UTF-8", []byte{0x0a, 0x01, 0xff}, &pb.Feature{}, "field name (1) at byte 2: invalid UTF-8"},
		// A packed repeated scalar whose last element is cut short.
		{"packed", []byte{0x0a, 0x03, 0x01, 0x02, 0xff}, &descriptorpb.SourceCodeInfo_Location{}, "field path (1) at byte 4"},
		// A field of the wrong wire type is an unknown field to protobuf,
		// not the error: that lies in location after it.
		{"wrong wire type first", []byte{0x08, 0x01, 0x12, 0x02, 0x08, 0xff}, &pb.Feature{}, "field location (2): field latitude (1) at byte 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := arborproto.Unmarshal(tc.b, tc.m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

// Over Arbor's wire, a malformed payload is InvalidArgument naming the
// method and the field; the server goes on serving.
func TestMalformedPayloadOverTheWire(t *testing.T) {
	ctx := testContext(t)
	p := arbortest.New(t)
	if err := server.New(nil).Register(p.Server); err != nil {
		t.Fatal(err)
	}
	args := value.AppendArrayHeader(nil, 1)
	args = append(arborproto.AppendBinHeader(args, 2), 0x08, 0xff)
	_, err := arbor.CallRaw(ctx, p.Client, pb.RouteGuideGetFeatureProcedure, args)
	if arbor.CodeOf(err) != arbor.InvalidArgument || !strings.Contains(err.Error(), pb.RouteGuideGetFeatureProcedure) ||
		!strings.Contains(err.Error(), "field latitude (1)") {
		t.Fatalf("err = %v", err)
	}
	if f, err := pb.NewRouteGuideClient(p.Client).GetFeature(ctx, &pb.Point{}); err != nil || f == nil {
		t.Fatalf("after the bad call: %v, %v", f, err)
	}
}

func TestOfAdapter(t *testing.T) {
	c := value.For[arborproto.Of[*structpb.Value]]()
	b, err := c.Append(nil, arborproto.Of[*structpb.Value]{Msg: structpb.NewStringValue("s")})
	if err != nil {
		t.Fatal(err)
	}
	r := value.NewReader(b)
	got, err := c.Decode(&r)
	if err != nil || got.Msg.GetStringValue() != "s" {
		t.Fatalf("%v, %v", got.Msg, err)
	}
	b, _ = c.Append(nil, arborproto.Of[*structpb.Value]{})
	r = value.NewReader(b)
	if got, err := c.Decode(&r); err != nil || got.Msg != nil || !bytes.Equal(b, []byte{0xc0}) {
		t.Fatalf("nil: %x %v, %v", b, got.Msg, err)
	}
}
