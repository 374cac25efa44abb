package arborproto_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/value"
)

// maxProtoAllocs is the budget for one generated unary round trip over a
// real socket, client and server together, beyond the allocations
// protobuf itself makes to decode the request and the result.
const maxProtoAllocs = 5

// startTCP serves the route guide on TCP and dials it.
func startTCP(tb testing.TB) *pb.RouteGuideClient {
	tb.Helper()
	srv := arbor.NewServer()
	if err := server.New(nil).Register(srv); err != nil {
		tb.Fatal(err)
	}
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	c, err := arbor.Dial(context.Background(), l.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return pb.NewRouteGuideClient(c)
}

func TestGeneratedUnaryAllocs(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	c := startTCP(t)
	ctx := context.Background()
	pt := &pb.Point{Latitude: 407838351, Longitude: -746143763}
	var failed error
	call := func() {
		f, err := c.GetFeature(ctx, pt)
		if err == nil && f.GetName() == "" {
			err = arbor.Errorf(arbor.Internal, "no name")
		}
		if err != nil && failed == nil {
			failed = err
		}
	}
	for range 100 {
		call()
	}
	total := testing.AllocsPerRun(2000, call)
	if failed != nil {
		t.Fatal(failed)
	}
	// protobuf's own share: decoding the request on the server and the
	// result on the client.
	reqBytes, _ := proto.Marshal(pt)
	res, _ := c.GetFeature(ctx, pt)
	resBytes, _ := proto.Marshal(res)
	own := testing.AllocsPerRun(2000, func() {
		proto.Unmarshal(reqBytes, new(pb.Point))
		proto.Unmarshal(resBytes, new(pb.Feature))
	})
	t.Logf("%.2f allocations per GetFeature round trip, of which %.2f are protobuf's decoding", total, own)
	if total-own > maxProtoAllocs {
		t.Errorf("%.2f allocations beyond protobuf's %.2f, want at most %d", total-own, own, maxProtoAllocs)
	}
}

func BenchmarkGeneratedUnary(b *testing.B) {
	c := startTCP(b)
	ctx := context.Background()
	pt := &pb.Point{Latitude: 407838351, Longitude: -746143763}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetFeature(ctx, pt); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestGlueAddsNoAllocs pins the glue's share of a round trip at zero:
// AppendMessage marshals into the frame buffer without allocating, and
// ReadMessage allocates exactly what proto.Unmarshal does into the same
// message (the submessages and the copies of bytes fields that the
// message must own, since the frame it reads is reused). What is left of
// a generated round trip's allocations is the decoded messages
// themselves and the call machinery outside this package.
func TestGlueAddsNoAllocs(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	f := &pb.Feature{Name: "Patriots Path", Location: &pb.Point{Latitude: 407838351, Longitude: -746143763}}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(1000, func() { buf, _ = arborproto.AppendMessage(buf[:0], f) }); n != 0 {
		t.Errorf("AppendMessage: %.1f allocations, want 0", n)
	}
	enc, err := arborproto.AppendMessage(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	var m pb.Feature
	glue := testing.AllocsPerRun(1000, func() {
		r := value.NewReader(enc)
		if err := arborproto.ReadMessage(&r, &m); err != nil {
			t.Fatal(err)
		}
	})
	own := testing.AllocsPerRun(1000, func() { _ = proto.Unmarshal(raw, &m) })
	if glue != own {
		t.Errorf("ReadMessage: %.1f allocations, proto.Unmarshal %.1f: the glue should add none", glue, own)
	}
}
