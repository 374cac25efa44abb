package tree_test

import (
	"context"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
	"github.com/arbor-rpc/arbor/value"
)

// Content keys of generated functions' message arguments: a tree built
// in Go (protobuf binary) and the same tree as Cradle JSON (protojson)
// share one cache entry, over TCP, in either order.

const featureName = "feature_name+mem" // a cached function over GetFeature's result

func startProtoServer(t *testing.T) *treeServer {
	return startTreeServer(t, treeServerOpts{register: func(s *arbor.Server) error {
		if err := server.New(nil).Register(s); err != nil {
			return err
		}
		return arbor.Handle1(s, featureName, func(_ context.Context, f *pb.Feature) (string, error) {
			return f.GetName(), nil
		})
	}})
}

const patriotsName = "Patriots Path, Mendham, NJ 07945, USA"

// pointJSON is patriots' point as Cradle JSON writes a message argument:
// an object, read as protojson. The fields come in the reverse order of
// their numbers, and latitude as a string (protojson allows both), so the
// bytes have nothing in common with the binary form.
const pointJSON = `{"longitude": -746143763, "latitude": "407838351"}`

func getFeatureJSON(arg string) string {
	return `{"uuid": "` + pb.RouteGuideGetFeatureTreeID + `", "args": {"tuple_element0": ` + arg + `}}`
}

func TestProtoArgGoThenJSONOneCacheEntry(t *testing.T) {
	ts := startProtoServer(t)
	ctx := testContext(t)
	f, err := tree.Resolve[*pb.Feature](ctx, ts.c, pb.RouteGuideGetFeatureNode(&pb.Point{Latitude: 407838351, Longitude: -746143763}))
	if err != nil || f.GetName() != patriotsName {
		t.Fatalf("Go tree: %v, %v", f, err)
	}
	res, err := tree.ResolveJSON(ctx, ts.c, []byte(getFeatureJSON(pointJSON)))
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeFeature(t, res); got.GetName() != patriotsName {
		t.Fatalf("JSON tree: %v", got)
	}
	if n := ts.calls(t, pb.RouteGuideGetFeatureTreeID); n != 1 {
		t.Fatalf("GetFeature ran %d times for one message sent as binary then as JSON, want 1", n)
	}
}

func TestProtoArgJSONThenGoOneCacheEntry(t *testing.T) {
	ts := startProtoServer(t)
	ctx := testContext(t)
	if _, err := tree.ResolveJSON(ctx, ts.c, []byte(getFeatureJSON(pointJSON))); err != nil {
		t.Fatal(err)
	}
	// Twice from Go: the second takes the server's fast path (the memory
	// cache by the wire bytes' key), which must agree too.
	for i := range 2 {
		f, err := tree.Resolve[*pb.Feature](ctx, ts.c, pb.RouteGuideGetFeatureNode(patriotsPoint()))
		if err != nil || f.GetName() != patriotsName {
			t.Fatalf("Go tree %d: %v, %v", i, f, err)
		}
	}
	if n := ts.calls(t, pb.RouteGuideGetFeatureTreeID); n != 1 {
		t.Fatalf("GetFeature ran %d times for one message sent as JSON then as binary, want 1", n)
	}
}

// A cached parent's key covers its uncached child's message argument
// (Merkle): the child's argument is normalised too, and the second tree
// is answered from the parent's entry without running either function.
func TestProtoArgInsideCachedParent(t *testing.T) {
	ts := startProtoServer(t)
	ctx := testContext(t)
	goTree := request.New(featureName, request.New(pb.RouteGuideGetFeatureProcedure, patriotsPoint()))
	name, err := tree.Resolve[string](ctx, ts.c, goTree)
	if err != nil || name != patriotsName {
		t.Fatalf("Go tree: %q, %v", name, err)
	}
	js := `{"uuid": "` + featureName + `", "args": {"tuple_element0": {"uuid": "` + pb.RouteGuideGetFeatureProcedure +
		`", "args": {"tuple_element0": ` + pointJSON + `}}}}`
	res, err := tree.ResolveJSON(ctx, ts.c, []byte(js))
	if err != nil {
		t.Fatal(err)
	}
	r := value.NewReader(res)
	if got, err := r.ReadString(); err != nil || got != patriotsName {
		t.Fatalf("JSON tree: %q, %v", got, err)
	}
	if n := ts.calls(t, featureName); n != 1 {
		t.Errorf("%s ran %d times, want 1", featureName, n)
	}
	if n := ts.calls(t, pb.RouteGuideGetFeatureProcedure); n != 1 {
		t.Errorf("GetFeature ran %d times, want 1 (the second tree was a hit at its root)", n)
	}
}

// nil and the empty message are one protobuf value: one key, whether
// given as nil from Go, an empty message from Go, {} or null in JSON.
func TestProtoArgNilAndEmptyOneKey(t *testing.T) {
	ts := startProtoServer(t)
	ctx := testContext(t)
	for _, n := range []*request.Node{pb.RouteGuideGetFeatureNode((*pb.Point)(nil)), pb.RouteGuideGetFeatureNode(&pb.Point{})} {
		f, err := tree.Resolve[*pb.Feature](ctx, ts.c, n)
		if err != nil {
			t.Fatal(err)
		}
		// The handler sees an empty message, not nil: the feature it
		// answers for an unknown point carries that point.
		if f.GetLocation() == nil {
			t.Fatalf("feature for the empty point has no location: %v", f)
		}
	}
	for _, arg := range []string{`{}`, `null`} {
		if _, err := tree.ResolveJSON(ctx, ts.c, []byte(getFeatureJSON(arg))); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
	}
	if n := ts.calls(t, pb.RouteGuideGetFeatureTreeID); n != 1 {
		t.Fatalf("GetFeature ran %d times for nil, empty, {} and null, want 1", n)
	}
}

// An argument that is no message fails the tree up front, naming the
// request's path, the function and the argument.
func TestProtoArgMalformed(t *testing.T) {
	ts := startProtoServer(t)
	ctx := testContext(t)
	bad, err := request.Raw(value.AppendBytes(nil, []byte{0x08})) // field 1 varint, value missing
	if err != nil {
		t.Fatal(err)
	}
	_, err = tree.Resolve[*pb.Feature](ctx, ts.c, request.New(featureName, request.New(pb.RouteGuideGetFeatureProcedure, bad)))
	if arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Fatalf("malformed message: %v, want InvalidArgument", err)
	}
	for _, want := range []string{"args.tuple_element0", pb.RouteGuideGetFeatureProcedure, "argument 0", "routeguide.Point"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	_, err = tree.ResolveJSON(ctx, ts.c, []byte(getFeatureJSON(`{"altitude": 3}`)))
	if arbor.CodeOf(err) != arbor.InvalidArgument || !strings.Contains(err.Error(), "altitude") {
		t.Fatalf("unknown JSON field: %v", err)
	}
	if n := ts.calls(t, pb.RouteGuideGetFeatureTreeID) + ts.calls(t, pb.RouteGuideGetFeatureProcedure); n != 0 {
		t.Fatalf("GetFeature ran %d times on malformed arguments", n)
	}
}

func patriotsPoint() *pb.Point { return &pb.Point{Latitude: 407838351, Longitude: -746143763} }

func decodeFeature(t *testing.T, res []byte) *pb.Feature {
	t.Helper()
	var f pb.Feature
	r := value.NewReader(res)
	if err := arborproto.ReadMessage(&r, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}
