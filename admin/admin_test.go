package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/admin"
	"github.com/arbor-rpc/arbor/health"
	"github.com/arbor-rpc/arbor/metrics"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// Keep-alive connections of http.DefaultClient are not leaks.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// xssID is a function id a hostile registrant could choose; the console
// must show it as text.
const xssID = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`

// xssError is an error message with markup in it.
const xssError = `bad <b>input</b><script>window.__xss=3</script>`

// rig is a real server (TCP), observed, with request trees, health, the
// admin endpoint over HTTP and a client.
type rig struct {
	srv    *arbor.Server
	engine *resolve.Engine
	cl     *arbor.Client
	admin  *admin.Server
	health *health.Checker
	log    *slog.Logger
	url    string
}

func newRig(t *testing.T, token string) *rig {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := admin.NewLogBuffer(100, slog.LevelInfo)
	log := slog.New(logs.Handler(nil))
	srv := arbor.NewServer(arbor.WithObserver(m.Observer()), arbor.WithLogger(log))
	m.WatchServer(srv)
	must(t, arbor.Handle1(srv, "echo", func(ctx context.Context, p []byte) ([]byte, error) { return p, nil }, arbor.WithTitle("echo")))
	must(t, arbor.Handle1(srv, xssID, func(ctx context.Context, n int) (int, error) { return n, nil }))
	must(t, arbor.Handle1(srv, "fail", func(ctx context.Context, n int) (int, error) {
		log.Error("fail was called", "why", xssError)
		return 0, arbor.Errorf(arbor.InvalidArgument, "%s", xssError)
	}))
	slow := func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	for _, id := range []string{"slow1", "slow2", "slow3"} {
		must(t, arbor.Handle1(srv, id, slow))
	}
	must(t, arbor.Handle2(srv, "add+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	e, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 1 << 20, Observer: m.TreeObserver(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.WatchEngine(e)
	hc, err := health.Enable(srv)
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := arbor.Dial(testContext(t), l.URL(), arbor.WithObserver(m.Observer()))
	if err != nil {
		t.Fatal(err)
	}
	al, err := admin.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	h := admin.NewHandler(admin.Options{Gatherer: reg, Metrics: m, Server: srv, Engine: e, Health: hc, Logs: logs,
		Token: token, Title: "console test", Interval: 100 * time.Millisecond})
	as := admin.Serve(al, h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		as.Close(ctx)
		cl.Close()
		srv.Close()
		e.Close()
	})
	log.Info("console test server up", "addr", l.URL())
	return &rig{srv: srv, engine: e, cl: cl, admin: as, health: hc, log: log, url: as.URL()}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ name, data string }

// readEvents streams /api/events into a channel until ctx ends.
func readEvents(t *testing.T, ctx context.Context, url string) <-chan sseEvent {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("/api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
				ev = sseEvent{}
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan sseEvent, name string) sseEvent {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended before a %q event", name)
			}
			if ev.name == name {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %q event within 10s", name)
		}
	}
}

// The server pushes tree changes as they happen, on the stream.
func TestEventsPushTreeChanges(t *testing.T) {
	r := newRig(t, "")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	ch := readEvents(t, ctx, r.url)
	var hello admin.Snapshot
	if err := json.Unmarshal([]byte(next(t, ch, "hello").data), &hello); err != nil {
		t.Fatal(err)
	}
	if hello.Title != "console test" || len(hello.Catalog) == 0 || len(hello.Logs) == 0 || hello.Health == nil {
		t.Fatalf("hello snapshot: %+v", hello)
	}
	id, err := tree.Submit(ctx, r.cl, request.New("slow2", request.New("slow1", 30)))
	if err != nil {
		t.Fatal(err)
	}
	states := map[string][]resolve.State{}
	for {
		var ev resolve.Event
		if err := json.Unmarshal([]byte(next(t, ch, "tree").data), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Tree != id {
			t.Fatalf("event for tree %s, want %s", ev.Tree, id)
		}
		if ev.Kind == resolve.EventDone {
			break
		}
		if ev.Kind == resolve.EventNode {
			states[ev.Status.Path] = append(states[ev.Status.Path], ev.Status.State)
		}
	}
	want := "map[args.tuple_element0:[running finished] request:[subrequests running running finished]]"
	if got := fmt.Sprint(states); got != want {
		t.Errorf("pushed transitions %s, want %s", got, want)
	}
	// The periodic figures follow, with the calls counted.
	var st admin.Snapshot
	json.Unmarshal([]byte(next(t, ch, "stats").data), &st)
	if st.Engine == nil || st.Engine.Trees != 1 || len(st.Caches) != 1 || st.Caches[0].Tier != "memory" {
		t.Errorf("stats: engine %+v caches %+v", st.Engine, st.Caches)
	}
}

func TestLogLinesArePushed(t *testing.T) {
	r := newRig(t, "")
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	ch := readEvents(t, ctx, r.url)
	next(t, ch, "hello")
	r.log.Warn("disk almost full", "free", "3%")
	var l admin.LogLine
	json.Unmarshal([]byte(next(t, ch, "log").data), &l)
	if l.Message != "disk almost full" || l.Level != "WARN" || l.Attrs != "free=3%" {
		t.Errorf("log event %+v", l)
	}
}

func TestTokenGuardsEveryPath(t *testing.T) {
	r := newRig(t, "tok")
	for _, path := range []string{"/", "/metrics", "/healthz", "/api/snapshot", "/api/events", "/debug/pprof/", "/grpc.health.v1.Health/Check"} {
		resp, err := http.Get(r.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s without a token: %d", path, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("GET", r.url+"/healthz", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with the token: %d", resp.StatusCode)
	}
}

func TestHealthzFollowsTheDrain(t *testing.T) {
	r := newRig(t, "")
	get := func() (int, string) {
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || !strings.Contains(body, `"status":"SERVING"`) {
		t.Errorf("serving: %d %s", code, body)
	}
	r.health.SetStatus("db", health.NotServing)
	if code, body := get(); code != 200 || !strings.Contains(body, `"db":"NOT_SERVING"`) {
		t.Errorf("a service down (the server still serves): %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	if code, body := get(); code != 503 || !strings.Contains(body, `"draining":true`) {
		t.Errorf("after Shutdown: %d %s", code, body)
	}
}

func TestConsolePageHeaders(t *testing.T) {
	r := newRig(t, "")
	resp, err := http.Get(r.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-") || strings.Contains(csp, "unsafe-inline'; connect") && strings.Contains(csp, "script-src 'unsafe-inline'") {
		t.Errorf("CSP %q does not pin the page's script", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", resp.Header)
	}
	resp2, err := http.Get(r.url + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 404 {
		t.Errorf("unknown path: %v", resp2.StatusCode)
	}
}

func TestBindAddr(t *testing.T) {
	for in, want := range map[string]string{
		"":               "127.0.0.1:0",
		":0":             "127.0.0.1:0",
		"9090":           "127.0.0.1:9090",
		":9090":          "127.0.0.1:9090",
		"0.0.0.0:9090":   "0.0.0.0:9090",
		"[::1]:9090":     "[::1]:9090",
		"http://:7":      "127.0.0.1:7",
		"localhost:8080": "localhost:8080",
	} {
		if got, err := admin.BindAddr(in); err != nil || got != want {
			t.Errorf("BindAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1", "host:", "a:b:c"} {
		if got, err := admin.BindAddr(bad); err == nil {
			t.Errorf("BindAddr(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLogBufferKeepsTheLatest(t *testing.T) {
	b := admin.NewLogBuffer(3, slog.LevelInfo)
	log := slog.New(b.Handler(nil)).With("svc", "x")
	log.Debug("hidden")
	for i := range 5 {
		log.Info("line", "i", i)
	}
	got := b.Since(0)
	if len(got) != 3 || got[0].Attrs != "svc=x i=2" || got[2].Attrs != "svc=x i=4" || got[2].Seq != 5 {
		t.Errorf("kept %+v", got)
	}
	if s := b.Since(4); len(s) != 1 || s[0].Seq != 5 {
		t.Errorf("Since(4) = %+v", s)
	}
}

// The admin port speaks gRPC's health protocol over h2c, as a Kubernetes
// gRPC probe does: HTTP/2 without TLS, a length-prefixed empty request.
func TestGRPCHealthOnTheAdminPort(t *testing.T) {
	r := newRig(t, "")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	check := func() (int, string) {
		req, err := http.NewRequest("POST", r.url+"/grpc.health.v1.Health/Check", strings.NewReader("\x00\x00\x00\x00\x00"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("TE", "trailers")
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/%d, want 2", resp.ProtoMajor)
		}
		status := 0
		if len(b) >= 7 && b[5] == 0x08 {
			status = int(b[6])
		}
		return status, resp.Trailer.Get("Grpc-Status")
	}
	if st, code := check(); st != 1 || code != "0" {
		t.Errorf("serving: status %d, grpc-status %q; want 1 (SERVING), 0", st, code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	if st, code := check(); st != 2 || code != "0" {
		t.Errorf("draining: status %d, grpc-status %q; want 2 (NOT_SERVING), 0", st, code)
	}
}

// A console stream whose client stops reading (connected, its receive
// window full) is dropped once its writes block, instead of holding its
// place under MaxStreams for as long as the connection lives: with the
// limit taken by such clients, no console could connect again.
func TestStalledStreamIsDropped(t *testing.T) {
	logs := admin.NewLogBuffer(100, slog.LevelInfo)
	log := slog.New(logs.Handler(nil))
	al, err := admin.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	as := admin.Serve(al, admin.NewHandler(admin.Options{Logs: logs, MaxStreams: 1, Interval: 50 * time.Millisecond}))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		as.Close(ctx)
	}()
	// The stalled client: asks for the stream, then never reads.
	nc, err := net.Dial("tcp", al.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(nc, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
	status := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", as.URL()+"/api/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(5 * time.Second)
	for status() != http.StatusServiceUnavailable { // the stalled stream is open
		if time.Now().After(deadline) {
			t.Fatal("the stalled client's stream never opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Far more than the socket buffers hold, so the stream's writes block.
	big := strings.Repeat("x", 1900)
	for i := range 20000 {
		log.Info("filler", "i", i, "pad", big)
	}
	deadline = time.Now().Add(25 * time.Second)
	for {
		code := status()
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client that stopped reading still holds the only console stream: /api/events answers %d", code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
