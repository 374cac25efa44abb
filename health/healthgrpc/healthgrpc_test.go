package healthgrpc_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/health"
	"github.com/arbor-rpc/arbor/health/healthgrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs the handler on a loopback HTTP server speaking HTTP/1.1 and
// h2c, as a Kubernetes gRPC probe needs.
func serve(t *testing.T, hc *health.Checker) string {
	t.Helper()
	path, h := healthgrpc.NewHandler(hc)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// grpcHealthCall sends a real gRPC call of grpc.health.v1.Health's
// method over h2c: a length-prefixed protobuf HealthCheckRequest (field
// 1, the service name). The caller closes the body and the transport's
// idle connections.
func grpcHealthCall(ctx context.Context, base, method, service string) (*http.Response, *http.Transport, error) {
	var msg []byte
	if service != "" {
		msg = append([]byte{0x0a, byte(len(service))}, service...)
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	body = append(body, msg...)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/grpc.health.v1.Health/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, nil, err
	}
	return resp, tr, nil
}

// grpcCheck makes a real gRPC call over h2c: a length-prefixed protobuf
// HealthCheckRequest (field 1, the service name), and returns the status
// field of the response and the grpc-status trailer.
func grpcCheck(t *testing.T, base, service string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, tr, err := grpcHealthCall(ctx, base, "Check", service)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over HTTP/%d, want 2", resp.ProtoMajor)
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	code := resp.Trailer.Get("Grpc-Status")
	if code == "" {
		code = resp.Header.Get("Grpc-Status")
	}
	status := -1
	if len(out) >= 5 {
		m := out[5:]
		status = 0 // the default value is not encoded
		if len(m) >= 2 && m[0] == 0x08 {
			status = int(m[1])
		}
	}
	return status, code
}

func TestGRPCHealthOverH2C(t *testing.T) {
	hc := health.New(nil)
	hc.SetStatus("arbor.Demo", health.NotServing)
	base := serve(t, hc)
	if st, code := grpcCheck(t, base, ""); code != "0" || st != 1 {
		t.Errorf("server: status %d, grpc-status %s; want SERVING (1), 0", st, code)
	}
	if st, code := grpcCheck(t, base, "arbor.Demo"); code != "0" || st != 2 {
		t.Errorf("arbor.Demo: status %d, grpc-status %s; want NOT_SERVING (2), 0", st, code)
	}
	if _, code := grpcCheck(t, base, "nope"); code != "5" {
		t.Errorf("unknown service: grpc-status %s, want 5 (NotFound)", code)
	}
}

func TestConnectJSONHealth(t *testing.T) {
	hc := health.New(nil)
	base := serve(t, hc)
	resp, err := http.Post(base+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader(`{"service":""}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "SERVING") {
		t.Errorf("Connect JSON check: %d %s", resp.StatusCode, b)
	}
}

// grpcWatch opens grpc.health.v1.Health/Watch over h2c and sends every
// status the server streams on the returned channel, until the stream
// ends (the channel closes) or the test does.
func grpcWatch(t *testing.T, base, service string) <-chan int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	resp, tr, err := grpcHealthCall(ctx, base, "Watch", service)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := make(chan int, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		defer resp.Body.Close()
		for {
			var hdr [5]byte
			if _, err := io.ReadFull(resp.Body, hdr[:]); err != nil {
				return
			}
			m := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
			if _, err := io.ReadFull(resp.Body, m); err != nil {
				return
			}
			status := 0
			if len(m) >= 2 && m[0] == 0x08 {
				status = int(m[1])
			}
			select {
			case out <- status:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; tr.CloseIdleConnections() })
	return out
}

func nextStatus(t *testing.T, ch <-chan int, what string) int {
	t.Helper()
	select {
	case st, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the Watch stream ended", what)
		}
		return st
	case <-time.After(3 * time.Second):
		t.Fatalf("%s: no status streamed within 3s", what)
	}
	return -1
}

// A Watch stream is told NOT_SERVING as soon as the server begins to
// drain, as Check is: gRPC clients and load balancers that watch (grpc-go's
// client-side health checking does) must stop sending before the
// listeners close.
func TestWatchStreamsTheDrain(t *testing.T) {
	srv := arbor.NewServer()
	hc, err := health.Enable(srv)
	if err != nil {
		t.Fatal(err)
	}
	hc.SetStatus("db", health.Serving)
	if _, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := serve(t, hc)
	watches := map[string]<-chan int{"": grpcWatch(t, base, ""), "db": grpcWatch(t, base, "db")}
	for svc, ch := range watches {
		if st := nextStatus(t, ch, "the first message"); st != 1 {
			t.Fatalf("%q: first status %d, want SERVING (1)", svc, st)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for svc, ch := range watches {
		if st := nextStatus(t, ch, "after Shutdown"); st != 2 {
			t.Errorf("%q: after Shutdown began, status %d, want NOT_SERVING (2)", svc, st)
		}
	}
}
