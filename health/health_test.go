package health_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/health"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// served starts srv on TCP loopback and dials it.
func served(t *testing.T, srv *arbor.Server) *arbor.Client {
	t.Helper()
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := arbor.Dial(testContext(t), l.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

func TestHealthOverTheWire(t *testing.T) {
	srv := arbor.NewServer()
	hc, err := health.Enable(srv)
	if err != nil {
		t.Fatal(err)
	}
	c := served(t, srv)
	ctx := testContext(t)
	r, err := health.Check(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != health.Serving || r.Draining || len(r.Services) != 0 || !r.Serving() {
		t.Errorf("fresh server: %+v", r)
	}
	hc.SetStatus("db", health.NotServing)
	hc.SetStatus("cache", health.Serving)
	r, err = health.Check(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != health.Serving || r.Services["db"] != health.NotServing || r.Services["cache"] != health.Serving || r.Serving() {
		t.Errorf("with a service down: %+v", r)
	}
	if got := hc.Services(); len(got) != 2 || got[0] != "cache" || got[1] != "db" {
		t.Errorf("Services() = %v", got)
	}
	if _, err := hc.Status("nope"); err != health.ErrUnknownService {
		t.Errorf("unknown service: %v", err)
	}
	if _, err := arbor.Call1[health.Report](ctx, c, health.FunctionID, 1); arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Errorf("with an argument: %v", err)
	}
}

// The status is NOT_SERVING from the moment Shutdown begins, while calls
// still drain.
func TestNotServingAsSoonAsDrainBegins(t *testing.T) {
	srv := arbor.NewServer()
	hc, err := health.Enable(srv)
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	if err := arbor.Handle0(srv, "hold", func(ctx context.Context) (int, error) {
		close(started)
		<-release
		return 1, nil
	}); err != nil {
		t.Fatal(err)
	}
	hc.SetStatus("db", health.Serving)
	c := served(t, srv)
	ctx := testContext(t)
	held := make(chan error, 1)
	go func() { _, err := arbor.Call0[int](ctx, c, "hold"); held <- err }()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Draining() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for _, svc := range []string{"", "db"} {
		if s, err := hc.Status(svc); err != nil || s != health.NotServing {
			t.Errorf("while draining, %q is %v (%v), want NOT_SERVING", svc, s, err)
		}
	}
	if r := hc.Report(); !r.Draining || r.Status != health.NotServing || r.Services["db"] != health.NotServing {
		t.Errorf("report while draining: %+v", r)
	}
	if _, err := health.Check(ctx, c); err == nil {
		t.Error("a health call during the drain succeeded; the server should refuse new calls")
	}
	close(release)
	if err := <-held; err != nil {
		t.Errorf("the call in flight failed: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestWatchSeesChanges(t *testing.T) {
	hc := health.New(nil)
	n := 0
	stop := hc.Watch(func() { n++ })
	hc.SetStatus("x", health.Serving)
	hc.SetStatus("x", health.NotServing)
	stop()
	hc.SetStatus("x", health.Serving)
	if n != 2 {
		t.Errorf("onChange called %d times, want 2", n)
	}
}
