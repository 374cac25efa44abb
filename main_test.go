package arbor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testcerts"
	"github.com/arbor-rpc/arbor/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every blocking step, so that a bug fails a test
// instead of hanging the package.
const testTimeout = 10 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// netCase is one transport every behaviour test runs over. setup returns
// the address to listen on and the transport configurations of the server
// and of its clients; the same address can be listened on again after the
// first listener closes (for restart tests).
type netCase struct {
	name  string
	setup func(t testing.TB) (addr string, srv, cli *transport.Config)
}

var netCases = []netCase{
	{"tcp", func(t testing.TB) (string, *transport.Config, *transport.Config) {
		return "tcp://127.0.0.1:0", nil, nil
	}},
	{"unix", func(t testing.TB) (string, *transport.Config, *transport.Config) {
		return "unix:" + socketPath(t), nil, nil
	}},
	{"tls", func(t testing.TB) (string, *transport.Config, *transport.Config) {
		f := testcerts.Write(t, t.TempDir())
		return "tls://127.0.0.1:0",
			&transport.Config{CertFile: f.ServerCert, KeyFile: f.ServerKey},
			&transport.Config{CAFile: f.CACert}
	}},
	{"mem", func(t testing.TB) (string, *transport.Config, *transport.Config) {
		n := transport.NewMemNetwork()
		return "mem:arbor", &transport.Config{Mem: n}, &transport.Config{Mem: n}
	}},
	{"quic", func(t testing.TB) (string, *transport.Config, *transport.Config) {
		f := testcerts.Write(t, t.TempDir())
		return "quic://127.0.0.1:0",
			&transport.Config{CertFile: f.ServerCert, KeyFile: f.ServerKey},
			&transport.Config{CAFile: f.CACert}
	}},
}

// socketPath is a Unix socket path in a directory the test owns, short
// enough for the 108-byte limit whatever the test's name.
func socketPath(t testing.TB) string {
	dir := t.TempDir()
	if len(dir) > 80 {
		var err error
		if dir, err = os.MkdirTemp("", "arbor"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return filepath.Join(dir, "s.sock")
}

// eachNet runs f as a subtest over every transport.
func eachNet(t *testing.T, f func(t *testing.T, nc netCase)) {
	for _, nc := range netCases {
		t.Run(nc.name, func(t *testing.T) { f(t, nc) })
	}
}

// env is a running server and how to reach it.
type env struct {
	t      testing.TB
	srv    *arbor.Server
	url    string // the bound address
	listen string // the address asked for (for restarts: url for tcp/tls)
	srvCfg *transport.Config
	cliCfg *transport.Config
	served *result // Serve's result
}

// result is a value delivered once and read any number of times.
type result struct {
	done chan struct{}
	err  error
}

func newResult() *result { return &result{done: make(chan struct{})} }

func (r *result) set(err error) { r.err = err; close(r.done) }

// wait returns the result, failing t if it does not come in testTimeout.
func (r *result) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(testTimeout):
		t.Fatal("timed out waiting for Serve to return")
		return nil
	}
}

// start listens on nc's address and serves srv there until the test ends.
func start(t testing.TB, nc netCase, srv *arbor.Server) *env {
	t.Helper()
	addr, srvCfg, cliCfg := nc.setup(t)
	e := &env{t: t, srvCfg: srvCfg, cliCfg: cliCfg}
	e.serve(addr, srv)
	return e
}

// serve makes srv the env's server, listening on addr.
func (e *env) serve(addr string, srv *arbor.Server) {
	e.t.Helper()
	l, err := transport.Listen(context.Background(), addr, e.srvCfg)
	if err != nil {
		e.t.Fatalf("listen %s: %v", addr, err)
	}
	e.srv, e.url = srv, l.URL()
	served := newResult()
	e.served = served
	go func() { served.set(srv.Serve(l)) }()
	e.t.Cleanup(func() {
		srv.Close()
		if err := served.wait(e.t); !errors.Is(err, arbor.ErrServerClosed) {
			e.t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
}

// dial returns a client of the env's server, closed when the test ends.
func (e *env) dial(opts ...arbor.ClientOption) *arbor.Client {
	e.t.Helper()
	c, err := arbor.Dial(testContext(e.t), e.url, append([]arbor.ClientOption{arbor.WithTransport(e.cliCfg)}, opts...)...)
	if err != nil {
		e.t.Fatalf("dial %s: %v", e.url, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// wantCode fails t unless err is an *arbor.Error with code c whose message
// contains every one of subs.
func wantCode(t testing.TB, err error, c arbor.Code, subs ...string) *arbor.Error {
	t.Helper()
	var ae *arbor.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v (%T), want an *arbor.Error with code %v", err, err, c)
	}
	if ae.Code != c {
		t.Fatalf("got %v, want code %v", err, c)
	}
	for _, s := range subs {
		if !strings.Contains(ae.Message, s) {
			t.Errorf("error %q does not mention %q", ae.Message, s)
		}
	}
	return ae
}

// recv waits for a value on ch, failing the test after testTimeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitFor polls cond until it holds, failing t after testTimeout.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
