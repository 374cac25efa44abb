package server_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arbortest"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
	"github.com/arbor-rpc/arbor/value"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pair serves the route guide and returns a generated client of it.
func pair(t *testing.T, opts ...arbor.ServerOption) (*arbortest.Pair, *pb.RouteGuideClient) {
	t.Helper()
	p := arbortest.New(t, opts...)
	if err := server.New(nil).Register(p.Server); err != nil {
		t.Fatal(err)
	}
	return p, pb.NewRouteGuideClient(p.Client)
}

var patriots = &pb.Point{Latitude: 407838351, Longitude: -746143763}

func TestGetFeature(t *testing.T) {
	ctx := testContext(t)
	_, c := pair(t)
	f, err := c.GetFeature(ctx, patriots)
	if err != nil {
		t.Fatal(err)
	}
	if f.GetName() != "Patriots Path, Mendham, NJ 07945, USA" || !proto.Equal(f.GetLocation(), patriots) {
		t.Fatalf("got %v", f)
	}
	f, err = c.GetFeature(ctx, &pb.Point{Latitude: 1, Longitude: 2})
	if err != nil || f.GetName() != "" || f.GetLocation().GetLongitude() != 2 {
		t.Fatalf("unknown point: %v, %v", f, err)
	}
}

func TestListFeatures(t *testing.T) {
	ctx := testContext(t)
	_, c := pair(t)
	s, err := c.ListFeatures(ctx, &pb.Rectangle{
		Lo: &pb.Point{Latitude: 400000000, Longitude: -750000000},
		Hi: &pb.Point{Latitude: 420000000, Longitude: -730000000},
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		f, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.GetName())
	}
	if len(names) != 5 { // the unnamed feature is left out
		t.Fatalf("got %d features: %q", len(names), names)
	}
	// A bad rectangle ends the stream with the handler's error.
	s, err = c.ListFeatures(ctx, &pb.Rectangle{})
	if err == nil {
		_, err = s.Recv()
	}
	if arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Fatalf("empty rectangle: %v", err)
	}
}

func TestRecordRoute(t *testing.T) {
	ctx := testContext(t)
	_, c := pair(t)
	s, err := c.RecordRoute(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pb.Point{patriots, {Latitude: 408122808, Longitude: -743999179}, {Latitude: 1, Longitude: 1}} {
		if err := s.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := s.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if sum.GetPointCount() != 3 || sum.GetFeatureCount() != 2 || sum.GetDistance() <= 0 {
		t.Fatalf("summary %v", sum)
	}
}

func TestRouteChat(t *testing.T) {
	ctx := testContext(t)
	_, c := pair(t)
	s, err := c.RouteChat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notes := []*pb.RouteNote{
		{Location: &pb.Point{Latitude: 0, Longitude: 1}, Message: "first"},
		{Location: &pb.Point{Latitude: 0, Longitude: 2}, Message: "second"},
		{Location: &pb.Point{Latitude: 0, Longitude: 1}, Message: "third"},
	}
	for _, n := range notes {
		if err := s.Send(n); err != nil {
			t.Fatal(err)
		}
	}
	s.CloseSend()
	var got []string
	for {
		n, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n.GetMessage())
	}
	if len(got) != 1 || got[0] != "first" { // "third" is at first's location
		t.Fatalf("got %q", got)
	}
}

// The promise forms pipeline: ThenGetFeature takes the promise of a
// Point (here from a hand-written function) before it resolves, and the
// server substitutes it: one round trip for the chain.
func TestPromisePipelining(t *testing.T) {
	ctx := testContext(t)
	p, c := pair(t)
	err := arbor.Handle1(p.Server, "landmark", func(_ context.Context, name string) (*pb.Point, error) {
		if name != "patriots" {
			return nil, arbor.Errorf(arbor.NotFound, "no landmark %q", name)
		}
		return patriots, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.GoGetFeature(ctx, patriots).Wait()
	if err != nil || f.GetName() == "" {
		t.Fatalf("GoGetFeature: %v, %v", f, err)
	}
	pt := arbor.Go1[*pb.Point](ctx, p.Client, "landmark", "patriots")
	f, err = c.ThenGetFeature(ctx, pt).Wait()
	if err != nil || f.GetName() != "Patriots Path, Mendham, NJ 07945, USA" {
		t.Fatalf("ThenGetFeature: %v, %v", f, err)
	}
	// A failed link fails the chain with its own error.
	f, err = c.ThenGetFeature(ctx, arbor.Go1[*pb.Point](ctx, p.Client, "landmark", "nowhere")).Wait()
	if arbor.CodeOf(err) != arbor.NotFound {
		t.Fatalf("chain on a failed promise: %v, %v", f, err)
	}
}

// Request trees: the node constructor names the cached id (+mem, from the
// .proto's arbor.v1.cache), and results come from the cache the second
// time.
func TestRequestTree(t *testing.T) {
	ctx := testContext(t)
	p, _ := pair(t)
	engine, err := tree.Enable(p.Server, tree.Config{MemoryCacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	n := pb.RouteGuideGetFeatureNode(patriots)
	if n.ID != pb.RouteGuideGetFeatureTreeID || request.LevelOf(n.ID) != request.Mem {
		t.Fatalf("node id %q", n.ID)
	}
	for i := range 2 {
		f, err := tree.Resolve[*pb.Feature](ctx, p.Client, n)
		if err != nil {
			t.Fatal(err)
		}
		if f.GetName() != "Patriots Path, Mendham, NJ 07945, USA" {
			t.Fatalf("resolve %d: %v", i, f)
		}
	}
	st, err := tree.Stats(ctx, p.Client)
	if err != nil {
		t.Fatal(err)
	}
	if st.Calls[pb.RouteGuideGetFeatureTreeID] != 1 {
		t.Fatalf("GetFeature ran %d times for two identical trees, want 1 (stats %+v)", st.Calls[pb.RouteGuideGetFeatureTreeID], st)
	}
	// The same message given as JSON in a Cradle tree arrives as protojson.
	js := `{"uuid": "` + pb.RouteGuideGetFeatureProcedure + `", "args": {"tuple_element0": {"latitude": 407838351, "longitude": -746143763}}}`
	res, err := tree.ResolveJSON(ctx, p.Client, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	r := value.NewReader(res)
	f, err := value.For[*pb.Feature]().Decode(&r)
	if err != nil || f.GetName() != "Patriots Path, Mendham, NJ 07945, USA" {
		t.Fatalf("JSON tree: %v, %v", f, err)
	}
}
