package bridge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/proto"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/bridge"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// seen records what the server's interceptor saw.
type seen struct {
	mu    sync.Mutex
	calls []arbor.Request
	ctxs  []context.Context
}

func (s *seen) last() (arbor.Request, context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		return arbor.Request{}, nil
	}
	return s.calls[len(s.calls)-1], s.ctxs[len(s.ctxs)-1]
}

// env is an Arbor server with the route guide, served over HTTP by the
// bridge.
type env struct {
	url  string
	seen *seen
	srv  *arbor.Server
}

func start(t *testing.T, opts ...arbor.ServerOption) *env { return startB(t, opts...) }

func startB(t testing.TB, opts ...arbor.ServerOption) *env {
	t.Helper()
	s := &seen{}
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			s.mu.Lock()
			s.calls = append(s.calls, *req)
			s.ctxs = append(s.ctxs, ctx)
			s.mu.Unlock()
			switch req.Metadata.Get("x-test") {
			case "trailer":
				arbor.SetTrailer(ctx, "x-served-by", "arbor", "grpc-status", "13") // the second is the protocol's
			case "trailer-deny":
				arbor.SetTrailer(ctx, "x-why", "policy")
				return nil, arbor.Errorf(arbor.PermissionDenied, "denied by the interceptor")
			case "deny":
				return nil, arbor.Errorf(arbor.PermissionDenied, "denied by the interceptor")
			case "wait":
				<-ctx.Done()
				return nil, arbor.Errorf(arbor.DeadlineExceeded, "waited until the deadline")
			}
			return next(ctx, req)
		}
	}
	srv := arbor.NewServer(append([]arbor.ServerOption{arbor.WithInterceptors(ic)}, opts...)...)
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := bridge.NewHTTPServer(bridge.New(srv, bridge.Config{}))
	go hs.Serve(l)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return &env{url: "http://" + l.Addr().String(), seen: s, srv: srv}
}

// h2c is an HTTP client speaking unencrypted HTTP/2, as gRPC clients do.
func h2c(t *testing.T) *http.Client { return h2cB(t) }

func h2cB(t testing.TB) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// http1 is an HTTP/1.1 client.
func http1(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

var patriots = &pb.Point{Latitude: 407838351, Longitude: -746143763}

const patriotsName = "Patriots Path, Mendham, NJ 07945, USA"

// protocols are the ways a connect-go client calls: Connect binary and
// JSON over HTTP/1.1, gRPC and gRPC-Web over HTTP/2.
func protocols(t *testing.T) map[string]struct {
	client *http.Client
	opts   []connect.ClientOption
} {
	return map[string]struct {
		client *http.Client
		opts   []connect.ClientOption
	}{
		"connect-proto-http1": {http1(t), nil},
		"connect-json-http1":  {http1(t), []connect.ClientOption{connect.WithProtoJSON()}},
		"connect-get-http1":   {http1(t), []connect.ClientOption{connect.WithHTTPGet(), connect.WithProtoJSON()}},
		"grpc-h2c":            {h2c(t), []connect.ClientOption{connect.WithGRPC()}},
		"grpc-json-h2c":       {h2c(t), []connect.ClientOption{connect.WithGRPC(), connect.WithProtoJSON()}},
		"grpcweb-http1":       {http1(t), []connect.ClientOption{connect.WithGRPCWeb()}},
		"connect-gzip-h2c":    {h2c(t), []connect.ClientOption{connect.WithSendGzip()}},
	}
}

func TestUnaryEveryProtocol(t *testing.T) {
	e := start(t)
	for name, p := range protocols(t) {
		t.Run(name, func(t *testing.T) {
			c := connect.NewClient[pb.Point, pb.Feature](p.client, e.url+pb.RouteGuideGetFeatureProcedure, p.opts...)
			res, err := c.CallUnary(testContext(t), connect.NewRequest(patriots))
			if err != nil {
				t.Fatal(err)
			}
			if res.Msg.GetName() != patriotsName || !proto.Equal(res.Msg.GetLocation(), patriots) {
				t.Fatalf("got %v", res.Msg)
			}
			req, _ := e.seen.last()
			if req.ID != pb.RouteGuideGetFeatureProcedure || req.Kind != arbor.KindUnary {
				t.Fatalf("the interceptor saw %q (%s)", req.ID, req.Kind)
			}
		})
	}
}

func TestServerStream(t *testing.T) {
	e := start(t)
	for name, p := range protocols(t) {
		if strings.Contains(name, "get") {
			continue // GET is for unary calls
		}
		t.Run(name, func(t *testing.T) {
			c := connect.NewClient[pb.Rectangle, pb.Feature](p.client, e.url+pb.RouteGuideListFeaturesProcedure, p.opts...)
			s, err := c.CallServerStream(testContext(t), connect.NewRequest(&pb.Rectangle{
				Lo: &pb.Point{Latitude: 400000000, Longitude: -750000000},
				Hi: &pb.Point{Latitude: 420000000, Longitude: -730000000},
			}))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for s.Receive() {
				if s.Msg().GetName() == "" {
					t.Errorf("unnamed feature %v", s.Msg())
				}
				n++
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if n != 5 {
				t.Fatalf("%d features, want 5", n)
			}
			req, _ := e.seen.last()
			if req.Kind != arbor.KindServerStream {
				t.Fatalf("the interceptor saw %s", req.Kind)
			}
		})
	}
}

func TestClientStream(t *testing.T) {
	e := start(t)
	c := connect.NewClient[pb.Point, pb.RouteSummary](h2c(t), e.url+pb.RouteGuideRecordRouteProcedure, connect.WithGRPC())
	s := c.CallClientStream(testContext(t))
	for _, p := range []*pb.Point{patriots, {Latitude: 408122808, Longitude: -743999179}, {Latitude: 1, Longitude: 1}} {
		if err := s.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.CloseAndReceive()
	if err != nil {
		t.Fatal(err)
	}
	if res.Msg.GetPointCount() != 3 || res.Msg.GetFeatureCount() != 2 || res.Msg.GetDistance() <= 0 {
		t.Fatalf("summary %v", res.Msg)
	}
}

func TestBidiStream(t *testing.T) {
	e := start(t)
	c := connect.NewClient[pb.RouteNote, pb.RouteNote](h2c(t), e.url+pb.RouteGuideRouteChatProcedure, connect.WithGRPC())
	s := c.CallBidiStream(testContext(t))
	at := &pb.Point{Latitude: 5, Longitude: 5}
	if err := s.Send(&pb.RouteNote{Location: at, Message: "one"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&pb.RouteNote{Location: at, Message: "two"}); err != nil {
		t.Fatal(err)
	}
	// The answer to "two" ("one", left earlier) arrives while the stream is
	// still open.
	n, err := s.Receive()
	if err != nil || n.GetMessage() != "one" {
		t.Fatalf("Receive = %v, %v", n, err)
	}
	s.CloseRequest()
	if n, err := s.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseRequest: %v, %v; want EOF", n, err)
	}
	s.CloseResponse()
}

func TestErrorCodes(t *testing.T) {
	e := start(t)
	for name, p := range protocols(t) {
		t.Run(name, func(t *testing.T) {
			c := connect.NewClient[pb.Point, pb.Feature](p.client, e.url+pb.RouteGuideGetFeatureProcedure, p.opts...)
			req := connect.NewRequest(patriots)
			req.Header().Set("X-Test", "deny")
			_, err := c.CallUnary(testContext(t), req)
			if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "denied by the interceptor") {
				t.Fatalf("err = %v; want PermissionDenied from the interceptor", err)
			}
		})
	}
	// A handler's error keeps its code on a stream too.
	c := connect.NewClient[pb.Rectangle, pb.Feature](h2c(t), e.url+pb.RouteGuideListFeaturesProcedure, connect.WithGRPC())
	s, err := c.CallServerStream(testContext(t), connect.NewRequest(&pb.Rectangle{}))
	if err == nil {
		for s.Receive() {
		}
		err = s.Err()
		s.Close()
	}
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("stream error = %v; want InvalidArgument", err)
	}
}

func TestMetadataAndPeer(t *testing.T) {
	e := start(t)
	c := connect.NewClient[pb.Point, pb.Feature](h2c(t), e.url+pb.RouteGuideGetFeatureProcedure, connect.WithGRPC())
	req := connect.NewRequest(patriots)
	req.Header().Set("X-Trace-Id", "abc123")
	req.Header().Add("X-Multi", "1")
	req.Header().Add("X-Multi", "2")
	if _, err := c.CallUnary(testContext(t), req); err != nil {
		t.Fatal(err)
	}
	got, ctx := e.seen.last()
	if got.Metadata.Get("x-trace-id") != "abc123" {
		t.Errorf("metadata %v lacks x-trace-id", got.Metadata)
	}
	var multi []string
	for _, p := range got.Metadata {
		if p.Key == "x-multi" {
			multi = append(multi, p.Value)
		}
		if strings.HasPrefix(p.Key, "grpc-") || p.Key == "content-type" || p.Key == "te" {
			t.Errorf("protocol header %q passed as metadata", p.Key)
		}
	}
	if strings.Join(multi, ",") != "1,2" {
		t.Errorf("x-multi = %q", multi)
	}
	if arbor.IncomingMetadata(ctx).Get("x-trace-id") != "abc123" {
		t.Error("the handler's context lacks the metadata")
	}
	if p, ok := arbor.PeerFromContext(ctx); !ok || p.Addr == nil || !strings.HasPrefix(p.Addr.String(), "127.0.0.1:") {
		t.Errorf("peer = %+v, %v", p, ok)
	}
}

func TestBearerAuth(t *testing.T) {
	e := start(t, arbor.WithBearerAuth(func(ctx context.Context, token string) (context.Context, error) {
		if token != "s3cret" {
			return nil, arbor.Errorf(arbor.Unauthenticated, "bad token")
		}
		return ctx, nil
	}))
	c := connect.NewClient[pb.Point, pb.Feature](h2c(t), e.url+pb.RouteGuideGetFeatureProcedure, connect.WithGRPC())
	if _, err := c.CallUnary(testContext(t), connect.NewRequest(patriots)); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("no token: %v", err)
	}
	req := connect.NewRequest(patriots)
	req.Header().Set("Authorization", "Bearer s3cret")
	if _, err := c.CallUnary(testContext(t), req); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

func TestDeadline(t *testing.T) {
	e := start(t)
	for name, opts := range map[string][]connect.ClientOption{"grpc": {connect.WithGRPC()}, "connect": nil} {
		t.Run(name, func(t *testing.T) {
			c := connect.NewClient[pb.Point, pb.Feature](h2c(t), e.url+pb.RouteGuideGetFeatureProcedure, opts...)
			ctx, cancel := context.WithTimeout(testContext(t), 200*time.Millisecond)
			defer cancel()
			req := connect.NewRequest(patriots)
			req.Header().Set("X-Test", "wait")
			start := time.Now()
			_, err := c.CallUnary(ctx, req)
			if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
				t.Fatalf("err = %v; want DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v", d)
			}
			_, hctx := e.seen.last()
			if _, ok := hctx.Deadline(); !ok {
				t.Fatal("the handler's context has no deadline")
			}
		})
	}
}

func TestReflection(t *testing.T) {
	e := start(t)
	rc := grpcreflect.NewClient(h2c(t), e.url, connect.WithGRPC())
	s := rc.NewStream(testContext(t))
	defer s.Close()
	names, err := s.ListServices()
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, n := range names {
		list = append(list, string(n))
	}
	if !strings.Contains(strings.Join(list, " "), "routeguide.RouteGuide") {
		t.Fatalf("services %q lack routeguide.RouteGuide", list)
	}
	files, err := s.FileContainingSymbol("routeguide.RouteGuide")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range files {
		if f.GetName() == "routeguide/route_guide.proto" && len(f.GetMessageType()) == 5 {
			found = true
		}
	}
	if !found {
		t.Fatalf("FileContainingSymbol returned %d files without route_guide.proto's 5 messages", len(files))
	}
}

// A malformed protobuf body is refused with InvalidArgument naming the
// method and the field.
func TestMalformedPayload(t *testing.T) {
	e := start(t)
	body := []byte{0x08, 0xff} // latitude: a varint cut short
	req, _ := http.NewRequestWithContext(testContext(t), "POST", e.url+pb.RouteGuideGetFeatureProcedure, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/proto")
	resp, err := http1(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "invalid_argument") ||
		!strings.Contains(string(msg), pb.RouteGuideGetFeatureProcedure) || !strings.Contains(string(msg), "field latitude (1)") {
		t.Fatalf("status %d, body %s", resp.StatusCode, msg)
	}
}

// Functions that no .proto describes are not served, and unknown paths
// answer 404 (Unimplemented to RPC clients).
func TestOnlyGeneratedFunctions(t *testing.T) {
	e := start(t)
	if err := arbor.Handle1(e.srv, "/routeguide.RouteGuide/Fake", func(_ context.Context, s string) (string, error) { return s, nil }); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/routeguide.RouteGuide/Fake", "/routeguide.RouteGuide/GetFeature+mem", "/nope.Nope/Nope"} {
		c := connect.NewClient[pb.Point, pb.Feature](h2c(t), e.url+path, connect.WithGRPC())
		if _, err := c.CallUnary(testContext(t), connect.NewRequest(patriots)); connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Errorf("%s: %v; want Unimplemented", path, err)
		}
	}
}

// gRPC over TLS (HTTP/2 negotiated by ALPN), as arbor serve --https serves
// it; the peer's TLS state reaches the handler.
func TestGRPCOverTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "bridge test CA")
	srv := arbor.NewServer(arbor.WithInterceptors(func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if p, _ := arbor.PeerFromContext(ctx); p.TLS == nil || !p.TLS.HandshakeComplete {
				return nil, arbor.Errorf(arbor.Unauthenticated, "no TLS state")
			}
			return next(ctx, req)
		}
	}))
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := bridge.NewHTTPServer(bridge.New(srv, bridge.Config{}))
	hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{ca.IssueTLS(t, "server", testcerts.Server, "127.0.0.1")}, NextProtos: []string{"h2", "http/1.1"}}
	go hs.Serve(tls.NewListener(l, hs.TLSConfig))
	defer hs.Close()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := connect.NewClient[pb.Point, pb.Feature](&http.Client{Transport: tr}, "https://"+l.Addr().String()+pb.RouteGuideGetFeatureProcedure, connect.WithGRPC())
	res, err := c.CallUnary(testContext(t), connect.NewRequest(patriots))
	if err != nil || res.Msg.GetName() != patriotsName {
		t.Fatalf("GetFeature over TLS: %v, %v", res, err)
	}
}

// A message over Config.MaxMessageBytes is refused before the function
// runs.
func TestMessageLimit(t *testing.T) {
	srv := arbor.NewServer()
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := bridge.NewHTTPServer(bridge.New(srv, bridge.Config{MaxMessageBytes: 100}))
	go hs.Serve(l)
	defer hs.Close()
	c := connect.NewClient[pb.RouteNote, pb.RouteNote](h2c(t), "http://"+l.Addr().String()+pb.RouteGuideRouteChatProcedure, connect.WithGRPC())
	s := c.CallBidiStream(testContext(t))
	s.Send(&pb.RouteNote{Message: strings.Repeat("x", 200)})
	_, err = s.Receive()
	s.CloseRequest()
	s.CloseResponse()
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("a 200-byte message with a 100-byte limit: %v", err)
	}
}

// Trailers a handler or interceptor sets reach HTTP callers: as trailers
// of a unary result in every protocol and of a stream, and as the
// metadata of an error; those named like the protocol's own are left out.
func TestTrailers(t *testing.T) {
	e := start(t)
	for name, p := range protocols(t) {
		t.Run(name, func(t *testing.T) {
			c := connect.NewClient[pb.Point, pb.Feature](p.client, e.url+pb.RouteGuideGetFeatureProcedure, p.opts...)
			req := connect.NewRequest(patriots)
			req.Header().Set("X-Test", "trailer")
			res, err := c.CallUnary(testContext(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Trailer().Get("X-Served-By"); got != "arbor" {
				t.Errorf("trailer x-served-by = %q, want arbor (trailers %v, headers %v)", got, res.Trailer(), res.Header())
			}
			if strings.Contains(name, "get") {
				return // a GET carries no denial case worth repeating
			}
			req = connect.NewRequest(patriots)
			req.Header().Set("X-Test", "trailer-deny")
			_, err = c.CallUnary(testContext(t), req)
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied {
				t.Fatalf("err = %v, want PermissionDenied", err)
			}
			if got := ce.Meta().Get("X-Why"); got != "policy" {
				t.Errorf("error metadata x-why = %q, want policy (%v)", got, ce.Meta())
			}
		})
	}
	t.Run("server-stream", func(t *testing.T) {
		c := connect.NewClient[pb.Rectangle, pb.Feature](h2c(t), e.url+pb.RouteGuideListFeaturesProcedure, connect.WithGRPC())
		req := connect.NewRequest(&pb.Rectangle{Lo: patriots, Hi: patriots})
		req.Header().Set("X-Test", "trailer")
		s, err := c.CallServerStream(testContext(t), req)
		if err != nil {
			t.Fatal(err)
		}
		for s.Receive() {
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if got := s.ResponseTrailer().Get("X-Served-By"); got != "arbor" {
			t.Errorf("stream trailer x-served-by = %q (%v)", got, s.ResponseTrailer())
		}
		s.Close()
	})
}
