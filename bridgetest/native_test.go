package bridgetest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/bridge"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/internal/demo/greeter"
	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// The native gRPC server (bridge.NewGRPCServer) driven by grpc-go's own
// client over real sockets.

// startNative serves the route guide and the Greeter on the native
// server; cfg and gcfg may be zero.
func startNative(t testing.TB, interceptor arbor.Interceptor, cfg bridge.Config, gcfg bridge.GRPCConfig) string {
	t.Helper()
	srv, l := routeGuide(t, interceptor)
	gs := bridge.NewGRPCServer(bridge.New(srv, cfg), gcfg)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(l) }()
	t.Cleanup(func() {
		gs.Close()
		if err := <-served; !errors.Is(err, bridge.ErrGRPCServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
		srv.Close()
	})
	return l.Addr().String()
}

func TestNativeAllKinds(t *testing.T) {
	cc := dial(t, startNative(t, nil, bridge.Config{}, bridge.GRPCConfig{}))
	checkAllKinds(t, cc)
}

// checkAllKinds calls every kind of RPC of the route guide.
func checkAllKinds(t *testing.T, cc *grpc.ClientConn) {
	t.Helper()
	ctx := testContext(t)
	var f pb.Feature
	if err := cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f); err != nil {
		t.Fatal(err)
	}
	if f.GetName() != patriotsName {
		t.Fatalf("GetFeature: %v", &f)
	}
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, pb.RouteGuideListFeaturesProcedure)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(&pb.Rectangle{Lo: &pb.Point{Latitude: 400000000, Longitude: -750000000}, Hi: &pb.Point{Latitude: 420000000, Longitude: -730000000}}); err != nil {
		t.Fatal(err)
	}
	s.CloseSend()
	n := 0
	for {
		var f pb.Feature
		if err := s.RecvMsg(&f); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("ListFeatures: %d features, want 5", n)
	}
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, pb.RouteGuideRecordRouteProcedure)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*pb.Point{patriots, {Latitude: 408122808, Longitude: -743999179}} {
		if err := cs.SendMsg(p); err != nil {
			t.Fatal(err)
		}
	}
	cs.CloseSend()
	var sum pb.RouteSummary
	if err := cs.RecvMsg(&sum); err != nil {
		t.Fatal(err)
	}
	if sum.GetPointCount() != 2 || sum.GetFeatureCount() != 2 {
		t.Fatalf("RecordRoute: %v", &sum)
	}
	bs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, pb.RouteGuideRouteChatProcedure)
	if err != nil {
		t.Fatal(err)
	}
	at := &pb.Point{Latitude: 7, Longitude: 7}
	for _, m := range []string{"a", "b"} {
		if err := bs.SendMsg(&pb.RouteNote{Location: at, Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	var note pb.RouteNote
	if err := bs.RecvMsg(&note); err != nil || note.GetMessage() != "a" {
		t.Fatalf("RouteChat: %v, %v", &note, err)
	}
	bs.CloseSend()
	if err := bs.RecvMsg(&note); !errors.Is(err, io.EOF) {
		t.Fatalf("RouteChat after CloseSend: %v", err)
	}
}

// Many large messages both ways: flow control (the client's 64 KiB
// windows outbound, the server's stream window inbound) lets them all
// through, on several streams at once.
func TestNativeFlowControl(t *testing.T) {
	cc := dial(t, startNative(t, nil, bridge.Config{}, bridge.GRPCConfig{StreamWindow: 65535, ConnWindow: 65535}))
	ctx := testContext(t)
	name := strings.Repeat("n", 8<<10)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, greeter.GreeterSayHellosProcedure)
			if err != nil {
				t.Error(err)
				return
			}
			if err := s.SendMsg(&greeter.HellosRequest{Name: name, Count: greeter.MaxHellos}); err != nil {
				t.Error(err)
				return
			}
			s.CloseSend()
			n := 0
			for {
				var r greeter.HelloReply
				if err := s.RecvMsg(&r); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Error(err)
					return
				}
				if !strings.Contains(r.GetMessage(), name) {
					t.Errorf("reply %d lacks the name", n)
					return
				}
				n++
			}
			if n != greeter.MaxHellos {
				t.Errorf("%d replies, want %d", n, greeter.MaxHellos)
			}
		})
		wg.Go(func() {
			bs, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, pb.RouteGuideRouteChatProcedure)
			if err != nil {
				t.Error(err)
				return
			}
			msg := strings.Repeat("m", 4<<10)
			for i := range 200 { // 800 KiB, at distinct places: no answers
				if err := bs.SendMsg(&pb.RouteNote{Location: &pb.Point{Latitude: int32(g*1000 + i), Longitude: int32(i * 3)}, Message: msg}); err != nil {
					t.Error(err)
					return
				}
			}
			bs.CloseSend()
			var note pb.RouteNote
			if err := bs.RecvMsg(&note); !errors.Is(err, io.EOF) {
				t.Errorf("RouteChat: %v", err)
			}
		})
	}
	wg.Wait()
}

// Errors keep codes and details, metadata arrives, trailers return, and
// grpc-timeout is the handler's deadline.
func TestNativeErrorsMetadataDeadline(t *testing.T) {
	var mu sync.Mutex
	var deadline time.Duration
	var trace []string
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			mu.Lock()
			trace = nil
			for _, p := range req.Metadata {
				if p.Key == "x-trace" {
					trace = append(trace, p.Value)
				}
			}
			if d, ok := ctx.Deadline(); ok {
				deadline = time.Until(d)
			}
			mu.Unlock()
			arbor.SetTrailer(ctx, "x-served-by", "arbor", "grpc-status", "13", "Bad Key\n", "v")
			switch req.Metadata.Get("x-fail") {
			case "quota":
				return nil, arbor.Errorf(arbor.ResourceExhausted, "over quota: 100%% used\n(ü)")
			case "details":
				return nil, &arbor.Error{Code: arbor.FailedPrecondition, Message: "with details", Details: []byte{1, 2, 3}}
			case "plain":
				return nil, errors.New("a plain error")
			}
			return next(ctx, req)
		}
	}
	cc := dial(t, startNative(t, ic, bridge.Config{}, bridge.GRPCConfig{}))
	ctx, cancel := context.WithTimeout(testContext(t), 5*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-trace", "t-1", "x-trace", "t-2")
	var f pb.Feature
	var tr metadata.MD
	if err := cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if strings.Join(trace, ",") != "t-1,t-2" || deadline <= 3*time.Second || deadline > 5*time.Second {
		t.Errorf("the interceptor saw x-trace %q, deadline in %v", trace, deadline)
	}
	mu.Unlock()
	if got := tr.Get("x-served-by"); len(got) != 1 || got[0] != "arbor" {
		t.Fatalf("trailers %v lack x-served-by: arbor", tr)
	}
	if len(tr.Get("bad key\n")) != 0 || tr.Get("grpc-status") != nil {
		t.Errorf("trailers %v carry a protocol or invalid key", tr)
	}

	tr = nil
	err := cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-fail", "quota"), pb.RouteGuideGetFeatureProcedure, patriots, &f, grpc.Trailer(&tr))
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || st.Message() != "over quota: 100% used\n(ü)" {
		t.Fatalf("err = %v; want ResourceExhausted: over quota...", err)
	}
	if got := tr.Get("x-served-by"); len(got) != 1 || got[0] != "arbor" {
		t.Fatalf("an error's trailers %v lack x-served-by: arbor", tr)
	}

	err = cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-fail", "details"), pb.RouteGuideGetFeatureProcedure, patriots, &f)
	st, _ := status.FromError(err)
	if st.Code() != codes.FailedPrecondition || st.Message() != "with details" {
		t.Fatalf("err = %v", err)
	}
	ds := st.Details()
	if len(ds) != 1 {
		t.Fatalf("details %v", ds)
	}
	if bv, ok := ds[0].(*wrapperspb.BytesValue); !ok || string(bv.GetValue()) != "\x01\x02\x03" {
		t.Fatalf("detail %#v, want BytesValue 010203", ds[0])
	}

	err = cc.Invoke(metadata.AppendToOutgoingContext(ctx, "x-fail", "plain"), pb.RouteGuideGetFeatureProcedure, patriots, &f)
	if st, _ := status.FromError(err); st.Code() != codes.Unknown || st.Message() != "a plain error" {
		t.Fatalf("a plain error: %v", err)
	}

	// A status from the handler itself, in a server stream.
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, greeter.GreeterSayHellosProcedure)
	if err != nil {
		t.Fatal(err)
	}
	s.SendMsg(&greeter.HellosRequest{Name: "x", Count: -1})
	s.CloseSend()
	var r greeter.HelloReply
	if err := s.RecvMsg(&r); status.Code(err) != codes.OutOfRange {
		t.Fatalf("SayHellos count -1: %v", err)
	}

	err = cc.Invoke(ctx, "/routeguide.RouteGuide/Nope", patriots, &f)
	if st, _ := status.FromError(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "/routeguide.RouteGuide/Nope") {
		t.Fatalf("unknown method: %v", err)
	}
}

// A deadline ends the handler's context; a client's cancel (RST_STREAM)
// reaches it too.
func TestNativeDeadlineAndCancel(t *testing.T) {
	ended := make(chan error, 2)
	started := make(chan struct{}, 2)
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if req.Metadata.Get("x-test") == "wait" {
				started <- struct{}{}
				select {
				case <-ctx.Done():
					ended <- ctx.Err()
				case <-time.After(10 * time.Second):
					ended <- errors.New("the handler's context never ended")
				}
				return nil, arbor.Errorf(arbor.DeadlineExceeded, "waited")
			}
			return next(ctx, req)
		}
	}
	cc := dial(t, startNative(t, ic, bridge.Config{}, bridge.GRPCConfig{}))
	wait := metadata.AppendToOutgoingContext(testContext(t), "x-test", "wait")
	ctx, cancel := context.WithTimeout(wait, 200*time.Millisecond)
	defer cancel()
	var f pb.Feature
	if err := cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v", err)
	}
	// The server's timer or the client's RST_STREAM, whichever first.
	if err := <-ended; !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Fatalf("the handler saw %v", err)
	}

	ctx, cancel = context.WithCancel(wait)
	errc := make(chan error, 1)
	go func() { errc <- cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f) }()
	<-started
	<-started // the first call's
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("cancel: %v", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the handler saw %v, want Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client's cancel did not reach the handler")
	}
}

// A message over the limit is refused with ResourceExhausted; the
// connection serves on.
func TestNativeMessageLimit(t *testing.T) {
	cc := dial(t, startNative(t, nil, bridge.Config{MaxMessageBytes: 4096}, bridge.GRPCConfig{}))
	ctx := testContext(t)
	var r greeter.HelloReply
	err := cc.Invoke(ctx, greeter.GreeterSayHelloProcedure, &greeter.HelloRequest{Name: strings.Repeat("x", 8192)}, &r)
	if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "exceeds the limit of 4096 bytes") {
		t.Fatalf("a message over the limit: %v", err)
	}
	if err := cc.Invoke(ctx, greeter.GreeterSayHelloProcedure, &greeter.HelloRequest{Name: "small"}, &r); err != nil || !strings.Contains(r.GetMessage(), "small") {
		t.Fatalf("after the refusal: %v, %v", &r, err)
	}
}

// HTTP/2 over TLS, with a certificate made here.
func TestNativeTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "test CA")
	cert := ca.IssueTLS(t, "server", testcerts.Server, "127.0.0.1")
	var mu sync.Mutex
	var sawTLS bool
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			p, _ := arbor.PeerFromContext(ctx)
			mu.Lock()
			sawTLS = p.TLS != nil && p.TLS.NegotiatedProtocol == "h2" && p.Addr != nil
			mu.Unlock()
			return next(ctx, req)
		}
	}
	addr := startNative(t, ic, bridge.Config{}, bridge.GRPCConfig{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	checkAllKinds(t, cc)
	mu.Lock()
	if !sawTLS {
		t.Error("the handler's peer lacks the TLS state (h2) or the address")
	}
	mu.Unlock()

	// A plain client gets nowhere (and the server goes on).
	plain := dial(t, addr)
	ctx, cancel := context.WithTimeout(testContext(t), 2*time.Second)
	defer cancel()
	var f pb.Feature
	if err := plain.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f); err == nil {
		t.Fatal("a plaintext client was served on the TLS listener")
	}
	if err := cc.Invoke(testContext(t), pb.RouteGuideGetFeatureProcedure, patriots, &f); err != nil {
		t.Fatal(err)
	}
}

// Clients sending garbage, before and after the preface, lose their
// connection; the server serves the others on.
func TestNativeSurvivesGarbage(t *testing.T) {
	addr := startNative(t, nil, bridge.Config{}, bridge.GRPCConfig{})
	cc := dial(t, addr)
	ctx := testContext(t)
	var f pb.Feature
	if err := cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f); err != nil {
		t.Fatal(err)
	}
	garbage := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0xff, 0xff, 0xff, 4, 0, 0, 0, 0, 0),
		append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"), 0, 0, 8, 1, 5, 0, 0, 0, 1, 0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		make([]byte, 4096),
	}
	for i, g := range garbage {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		nc.Write(g)
		_, err = io.Copy(io.Discard, nc) // until the server closes
		nc.Close()
		if err != nil {
			t.Errorf("garbage %d: the server did not close the connection: %v", i, err)
		}
	}
	if err := cc.Invoke(ctx, pb.RouteGuideGetFeatureProcedure, patriots, &f); err != nil || f.GetName() != patriotsName {
		t.Fatalf("after the garbage: %v, %v", &f, err)
	}
}

// Shutdown lets a call in flight finish, then Serve returns.
func TestNativeShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if req.Metadata.Get("x-test") == "hold" {
				close(started)
				<-release
			}
			return next(ctx, req)
		}
	}
	srv := arbor.NewServer(arbor.WithInterceptors(ic))
	defer srv.Close()
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := bridge.NewGRPCServer(bridge.New(srv, bridge.Config{}), bridge.GRPCConfig{})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(l) }()
	cc := dial(t, l.Addr().String())
	errc := make(chan error, 1)
	var f pb.Feature
	go func() {
		errc <- cc.Invoke(metadata.AppendToOutgoingContext(testContext(t), "x-test", "hold"), pb.RouteGuideGetFeatureProcedure, patriots, &f)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- gs.Shutdown(testContext(t)) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-errc; err != nil || f.GetName() != patriotsName {
		t.Fatalf("the call in flight: %v, %v", &f, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, bridge.ErrGRPCServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// A unary call of 1 MiB each way: larger than every window on both
// sides, so both sides' WINDOW_UPDATEs carry it.
func TestNativeLargeUnary(t *testing.T) {
	cc := dial(t, startNative(t, nil, bridge.Config{}, bridge.GRPCConfig{}))
	name := strings.Repeat("L", 1<<20)
	for range 3 {
		var r greeter.HelloReply
		if err := cc.Invoke(testContext(t), greeter.GreeterSayHelloProcedure, &greeter.HelloRequest{Name: name}, &r); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.GetMessage(), name) {
			t.Fatalf("a reply of %d bytes lacks the name", len(r.GetMessage()))
		}
	}
}

// A trailer larger than a frame leaves in HEADERS and CONTINUATION.
func TestNativeLargeTrailer(t *testing.T) {
	big := strings.Repeat("t", 40<<10)
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			arbor.SetTrailer(ctx, "x-big", big)
			if req.Metadata.Get("x-fail") != "" {
				return nil, arbor.Errorf(arbor.NotFound, "%s", big[:20<<10])
			}
			return next(ctx, req)
		}
	}
	cc := dial(t, startNative(t, ic, bridge.Config{}, bridge.GRPCConfig{}))
	var f pb.Feature
	var tr metadata.MD
	if err := cc.Invoke(testContext(t), pb.RouteGuideGetFeatureProcedure, patriots, &f, grpc.Trailer(&tr)); err != nil {
		t.Fatal(err)
	}
	if got := tr.Get("x-big"); len(got) != 1 || got[0] != big {
		t.Fatalf("the big trailer: %d values", len(got))
	}
	tr = nil
	err := cc.Invoke(metadata.AppendToOutgoingContext(testContext(t), "x-fail", "1"), pb.RouteGuideGetFeatureProcedure, patriots, &f, grpc.Trailer(&tr))
	if st, _ := status.FromError(err); st.Code() != codes.NotFound || len(st.Message()) != 20<<10 {
		t.Fatalf("a trailers-only error with a big message: %v", status.Code(err))
	}
	if got := tr.Get("x-big"); len(got) != 1 || got[0] != big {
		t.Fatalf("the big trailer of an error: %d values", len(got))
	}
}
