package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

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
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	sctx, cancel := contextWithCancel(ctx)
	go func() {
		done <- run(sctx, []string{"serve", "--listen", "tcp://127.0.0.1:0", "--grpc", "127.0.0.1:0", "--cache-dir", ""}, pw, io.Discard)
		pw.Close()
	}()
	stopped := false
	defer func() {
		cancel()
		if stopped {
			return
		}
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("serve did not stop")
		}
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	for addr == "" && sc.Scan() {
		addr, _ = strings.CutPrefix(sc.Text(), "grpc listening on ")
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatal("serve printed no grpc listening line")
	}
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
	cancel()
	select {
	case code := <-done:
		stopped = true
		if code != exitOK {
			t.Fatalf("serve exited %d", code)
		}
	case <-time.After(testTimeout):
		t.Fatal("serve did not stop")
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
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	sctx, cancel := contextWithCancel(ctx)
	go func() {
		done <- run(sctx, []string{"serve", "--listen", "tcp://127.0.0.1:0", "--cache-dir", "",
			"--cert", certs.ServerCert, "--key", certs.ServerKey, "--ca", certs.CACert,
			"--https", "127.0.0.1:0", "--grpcs", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("serve did not stop")
		}
	}()
	sc := bufio.NewScanner(pr)
	var web, grpcs string
	for (web == "" || grpcs == "") && sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "http listening on "); ok {
			web = a
		} else if a, ok := strings.CutPrefix(sc.Text(), "grpcs listening on "); ok {
			grpcs = "https://" + a
		}
	}
	go io.Copy(io.Discard, pr)
	if web == "" || grpcs == "" {
		t.Fatal("serve printed no https or grpcs listening line")
	}
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
