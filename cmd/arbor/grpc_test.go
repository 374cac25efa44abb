package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/arbor-rpc/arbor/internal/demo/greeter"
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
