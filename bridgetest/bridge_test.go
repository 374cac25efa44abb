package bridgetest

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/bridge"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/internal/demo/greeter"
)

// grpcurl is the grpcurl binary TestMain builds (go.mod's tool directive
// pins its version).
var grpcurl string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bridgetest-")
	if err != nil {
		panic(err)
	}
	grpcurl = filepath.Join(dir, "grpcurl")
	out, err := exec.Command("go", "build", "-o", grpcurl, "github.com/fullstorydev/grpcurl/cmd/grpcurl").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		panic("building grpcurl: " + err.Error() + "\n" + string(out))
	}
	code := func() int {
		defer os.RemoveAll(dir)
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run")); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// start serves the route guide (and the demo Greeter) through the bridge
// on h2c and returns its address; interceptor, if set, runs on the Arbor
// server.
func start(t *testing.T, interceptor arbor.Interceptor) string {
	t.Helper()
	srv, l := routeGuide(t, interceptor)
	hs := bridge.NewHTTPServer(bridge.New(srv, bridge.Config{}))
	go hs.Serve(l)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return l.Addr().String()
}

// routeGuide is an Arbor server with the route guide and the demo
// Greeter (interceptor, if set, on it), and a listener for the bridge.
func routeGuide(t testing.TB, interceptor arbor.Interceptor) (*arbor.Server, net.Listener) {
	t.Helper()
	var opts []arbor.ServerOption
	if interceptor != nil {
		opts = append(opts, arbor.WithInterceptors(interceptor))
	}
	srv := arbor.NewServer(opts...)
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	if err := greeter.Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return srv, l
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

var patriots = &pb.Point{Latitude: 407838351, Longitude: -746143763}

const patriotsName = "Patriots Path, Mendham, NJ 07945, USA"

// grpc-go's client calls every kind of RPC of the Arbor service, with no
// stubs but grpc-go's generic Invoke and NewStream.
func TestGRPCGoClient(t *testing.T) {
	checkAllKinds(t, dial(t, start(t, nil))) // native_test.go: the same calls on the native server
}

// Errors keep their codes, metadata arrives, and grpc-timeout becomes the
// handler's deadline.
func TestGRPCGoErrorsMetadataDeadline(t *testing.T) {
	var deadline bool
	var trace string
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			trace = req.Metadata.Get("x-trace")
			_, deadline = ctx.Deadline()
			arbor.SetTrailer(ctx, "x-served-by", "arbor")
			switch req.Metadata.Get("x-fail") {
			case "":
			case "details":
				return nil, &arbor.Error{Code: arbor.FailedPrecondition, Message: "with details", Details: []byte{1, 2, 3}}
			default:
				return nil, arbor.Errorf(arbor.ResourceExhausted, "over quota")
			}
			return next(ctx, req)
		}
	}
	cc := dial(t, start(t, ic))
	ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-trace", "t-1")
	var f pb.Feature
	var tr metadata.MD
	if err := cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	if trace != "t-1" || !deadline {
		t.Fatalf("the interceptor saw x-trace %q, deadline %v", trace, deadline)
	}
	if got := tr.Get("x-served-by"); len(got) != 1 || got[0] != "arbor" {
		t.Fatalf("trailers %v lack x-served-by: arbor", tr)
	}
	tr = nil
	err := cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-fail", "1"), pb.RouteGuideGetFeatureProcedure, patriots, &f, grpc.Trailer(&tr))
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || st.Message() != "over quota" {
		t.Fatalf("err = %v; want ResourceExhausted: over quota", err)
	}
	if got := tr.Get("x-served-by"); len(got) != 1 || got[0] != "arbor" {
		t.Fatalf("an error's trailers %v lack x-served-by: arbor", tr)
	}
	// Details as the native server sends them (TestNativeErrorsMetadataDeadline).
	err = cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-fail", "details"), pb.RouteGuideGetFeatureProcedure, patriots, &f)
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "with details" {
		t.Fatalf("err = %v", err)
	}
	if ds := st.Details(); len(ds) != 1 {
		t.Fatalf("details %v, want one BytesValue", ds)
	} else if bv, ok := ds[0].(*wrapperspb.BytesValue); !ok || string(bv.GetValue()) != "\x01\x02\x03" {
		t.Fatalf("detail %#v, want BytesValue 010203", ds[0])
	}
	err = cc.Invoke(ctx, "/routeguide.RouteGuide/Nope", patriots, &f)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("unknown method: %v", err)
	}
}

// runGRPCurl runs grpcurl and returns its stdout.
func runGRPCurl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(testContext(t), grpcurl, args...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("grpcurl %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return string(out)
}

// grpcurl lists, describes and calls with no .proto, through reflection.
func TestGRPCurl(t *testing.T) {
	addr := start(t, nil)
	list := runGRPCurl(t, "-plaintext", addr, "list")
	for _, want := range []string{"routeguide.RouteGuide", "demo.v1.Greeter", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(list, want+"\n") {
			t.Errorf("list lacks %s:\n%s", want, list)
		}
	}
	desc := runGRPCurl(t, "-plaintext", addr, "describe", "routeguide.RouteGuide")
	if !strings.Contains(desc, "rpc RouteChat ( stream .routeguide.RouteNote ) returns ( stream .routeguide.RouteNote );") {
		t.Errorf("describe:\n%s", desc)
	}
	msg := runGRPCurl(t, "-plaintext", addr, "describe", "routeguide.Point")
	if !strings.Contains(msg, "int32 latitude = 1;") {
		t.Errorf("describe routeguide.Point:\n%s", msg)
	}
	out := runGRPCurl(t, "-plaintext", "-d", `{"latitude": 407838351, "longitude": -746143763}`, addr, "routeguide.RouteGuide/GetFeature")
	if !strings.Contains(out, patriotsName) {
		t.Errorf("GetFeature:\n%s", out)
	}
	out = runGRPCurl(t, "-plaintext", "-d", `{"name": "grpcurl", "count": 3}`, addr, "demo.v1.Greeter/SayHellos")
	if strings.Count(out, "grpcurl!") != 3 {
		t.Errorf("SayHellos:\n%s", out)
	}
}

// The same reply through the bridge and through Arbor's own client.
func TestSameAnswerBothWays(t *testing.T) {
	srv := arbor.NewServer()
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := bridge.NewHTTPServer(bridge.New(srv, bridge.Config{}))
	go hs.Serve(hl)
	defer hs.Close()

	c, err := arbor.Dial(testContext(t), l.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	native, err := pb.NewRouteGuideClient(c).GetFeature(testContext(t), patriots)
	if err != nil {
		t.Fatal(err)
	}
	var viaGRPC pb.Feature
	if err := dial(t, hl.Addr().String()).Invoke(testContext(t), pb.RouteGuideGetFeatureProcedure, patriots, &viaGRPC); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(native, &viaGRPC) {
		t.Fatalf("native %v, gRPC %v", native, &viaGRPC)
	}
}

// curl speaks Connect's JSON over HTTP/1.1: a POST with a JSON body, and
// a GET for a method without side effects.
func TestCurlConnectJSON(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed (make tools installs it):", err)
	}
	base := "http://" + start(t, nil)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(testContext(t), curl, append([]string{"-sS", "--http1.1"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	out := run("-H", "Content-Type: application/json", "-d", `{"latitude": 407838351, "longitude": -746143763}`, base+pb.RouteGuideGetFeatureProcedure)
	if !strings.Contains(out, `"name":"`+patriotsName+`"`) {
		t.Errorf("POST GetFeature: %s", out)
	}
	out = run(base + "/demo.v1.Greeter/SayHello?encoding=json&message=%7B%22name%22%3A%22curl%22%7D")
	if !strings.Contains(out, `"message":"Hello, curl!"`) {
		t.Errorf("GET SayHello: %s", out)
	}
	out = run("-H", "Content-Type: application/json", "-d", `{}`, base+"/demo.v1.Greeter/SayHello")
	if !strings.Contains(out, `"code":"invalid_argument"`) || !strings.Contains(out, "name is empty") {
		t.Errorf("an error as Connect JSON: %s", out)
	}
}
