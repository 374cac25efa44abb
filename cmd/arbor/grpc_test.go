package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor/internal/demo/greeter"
	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// serve --grpc serves the demo's generated Greeter on the native gRPC
// server: a gRPC client (connect-go's, over h2c) calls it, and serve
// stops cleanly.
func TestServeGRPC(t *testing.T) {
	ctx := testContext(t)
	var addr string
	s := serveUntil(t, []string{"--listen", "tcp://127.0.0.1:0", "--grpc", "127.0.0.1:0", "--cache-dir", ""}, func(line string) bool {
		addr, _ = strings.CutPrefix(line, "grpc listening on ")
		return addr != ""
	})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	c := connect.NewClient[greeter.HelloRequest, greeter.HelloReply](&http.Client{Transport: tr}, "http://"+addr+greeter.GreeterSayHelloProcedure, connect.WithGRPC())
	res, err := c.CallUnary(ctx, connect.NewRequest(&greeter.HelloRequest{Name: "grpc"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetMessage(); got != "Hello, grpc!" {
		t.Fatalf("SayHello = %q", got)
	}
	_, err = c.CallUnary(ctx, connect.NewRequest(&greeter.HelloRequest{}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("SayHello with no name: %v", err)
	}
	if code := s.stop(t); code != exitOK {
		t.Fatalf("serve exited %d", code)
	}
}

// --grpcs without a certificate is refused.
func TestServeGRPCSNeedsCert(t *testing.T) {
	code, _, stderr := runArbor(testContext(t), "serve", "--listen", "tcp://127.0.0.1:0", "--grpcs", "127.0.0.1:0", "--cache-dir", "")
	if code != exitFail || !strings.Contains(stderr, "--grpcs needs --cert and --key") {
		t.Fatalf("serve --grpcs without --cert = %d, %q", code, stderr)
	}
}

// With --ca, serve's TLS listeners require a client certificate: the
// --https and --grpcs ones as well as tls:// (they served anyone). And
// --https offers h2 by ALPN, which gRPC clients need.
func TestServeHTTPSAndGRPCSRequireClientCertWithCA(t *testing.T) {
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	var web, grpcs string
	serveUntil(t, []string{"--listen", "tcp://127.0.0.1:0", "--cache-dir", "",
		"--cert", certs.ServerCert, "--key", certs.ServerKey, "--ca", certs.CACert,
		"--https", "127.0.0.1:0", "--grpcs", "127.0.0.1:0"}, func(line string) bool {
		if a, ok := strings.CutPrefix(line, "http listening on "); ok {
			web = a
		} else if a, ok := strings.CutPrefix(line, "grpcs listening on "); ok {
			grpcs = "https://" + a
		}
		return web != "" && grpcs != ""
	})
	ca, err := os.ReadFile(certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	clientCert, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, withCert := range []bool{false, true} {
		tc := &tls.Config{RootCAs: roots}
		if withCert {
			tc.Certificates = []tls.Certificate{clientCert}
		}
		tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
		for _, base := range []string{web, grpcs} {
			c := connect.NewClient[greeter.HelloRequest, greeter.HelloReply](&http.Client{Transport: tr}, base+greeter.GreeterSayHelloProcedure, connect.WithGRPC())
			_, err := c.CallUnary(ctx, connect.NewRequest(&greeter.HelloRequest{Name: "tls"}))
			if withCert && err != nil {
				t.Errorf("%s with a client certificate: %v", base, err)
			}
			if !withCert && err == nil {
				t.Errorf("%s served a client without a certificate, though serve has --ca", base)
			}
		}
		if withCert { // gRPC clients (grpc-go, grpcurl) need h2 chosen by ALPN
			req, _ := http.NewRequestWithContext(ctx, "POST", web+greeter.GreeterSayHelloProcedure, strings.NewReader(`{"name":"tls"}`))
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.TLS.NegotiatedProtocol != "h2" {
				t.Errorf("--https answered over %s (ALPN %q), want HTTP/2 (h2)", resp.Proto, resp.TLS.NegotiatedProtocol)
			}
		}
		tr.CloseIdleConnections()
	}
}

// --https without a certificate is refused, and the --grpc server started
// before the refusal does not outlive it.
func TestServeHTTPSNeedsCert(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	code, _, stderr := runArbor(testContext(t), "serve", "--listen", "tcp://127.0.0.1:0", "--grpc", "127.0.0.1:0", "--https", "127.0.0.1:0", "--cache-dir", "")
	if code != exitFail || !strings.Contains(stderr, "--https needs --cert and --key") {
		t.Fatalf("serve --https without --cert = %d, %q", code, stderr)
	}
}

// A gossip address that cannot be bound fails serve, and the --grpc
// server started before it does not outlive it.
func TestServeGossipFailureStopsGRPC(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	code, _, stderr := runArbor(testContext(t), "serve", "--listen", "tcp://127.0.0.1:0", "--grpc", "127.0.0.1:0", "--cache-dir", "",
		"--gossip", taken.Addr().String())
	if code != exitFail {
		t.Fatalf("serve --gossip on a taken port = %d, %q", code, stderr)
	}
}
