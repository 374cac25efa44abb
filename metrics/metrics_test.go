package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cluster"
	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/metrics"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rig is a server and a client on TCP loopback, both observed by one
// Metrics, with request trees enabled and watched.
type rig struct {
	m   *metrics.Metrics
	reg *prometheus.Registry
	srv *arbor.Server
	cl  *arbor.Client
	web *httptest.Server // serves /metrics
}

func newRig(t *testing.T, opts metrics.Options) *rig {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := arbor.NewServer(arbor.WithObserver(m.Observer()))
	m.WatchServer(srv)
	must(t, arbor.Handle1(srv, "echo", func(ctx context.Context, p []byte) ([]byte, error) { return p, nil }))
	must(t, arbor.Handle1(srv, "fail", func(ctx context.Context, s string) (int, error) {
		return 0, arbor.Errorf(arbor.Internal, "failed: %s", s)
	}))
	must(t, arbor.Handle2(srv, "add+mem", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	must(t, arbor.Handle1(srv, "nap", func(ctx context.Context, ms int) (int, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return ms, nil
	}))
	must(t, arbor.HandleServerStream(srv, "count", func(ctx context.Context, n int, out *arbor.Sender[int]) error {
		for i := range n {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	}))
	e, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 1 << 20, Observer: m.TreeObserver()})
	if err != nil {
		t.Fatal(err)
	}
	m.WatchEngine(e)
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := arbor.Dial(testContext(t), l.URL(), arbor.WithObserver(m.Observer()))
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(func() {
		web.Close()
		cl.Close()
		srv.Close()
		e.Close()
	})
	return &rig{m: m, reg: reg, srv: srv, cl: cl, web: web}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scrape fetches /metrics over HTTP and parses it with Prometheus's own
// text parser.
func (r *rig) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(r.web.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return fams
}

// gather reads reg directly (no HTTP), by family name.
func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	return byName
}

// value finds the sample of family name whose labels include want, or
// fails the test; histograms give their sample count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, ok := lookup(fams, name, want)
	if !ok {
		t.Fatalf("no %s%v in the scrape", name, want)
	}
	return v
}

func lookup(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, lp := range m.Label {
			labels[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// The latency histograms hold what the calls took: a handler's sleep on
// both sides, whether the connection timed the call (a served call that
// may run inline: the observer shares its clock reads) or the observer.
func TestLatencyHistograms(t *testing.T) {
	r := newRig(t, metrics.Options{})
	ctx := testContext(t)
	const naps, ms = 4, 25
	for range naps {
		if _, err := arbor.Call1[int](ctx, r.cl, "nap", ms); err != nil {
			t.Fatal(err)
		}
	}
	f := r.scrape(t)
	for _, side := range []string{"server", "client"} {
		name := "arbor_" + side + "_call_duration_seconds"
		var h *dto.Histogram
		for _, m := range f[name].GetMetric() {
			for _, lp := range m.Label {
				if lp.GetName() == "function" && lp.GetValue() == "nap" {
					h = m.Histogram
				}
			}
		}
		if h == nil || h.GetSampleCount() != naps {
			t.Fatalf("%s{nap} = %v, want %d samples", name, h, naps)
		}
		if sum := h.GetSampleSum(); sum < naps*ms/1e3 || sum > 10 {
			t.Errorf("%s{nap} sums %.3fs for %d calls of %d ms", name, sum, naps, ms)
		}
		for _, b := range h.Bucket {
			if b.GetUpperBound() < ms/1e3 && b.GetCumulativeCount() != 0 {
				t.Errorf("%s{nap}: %d calls under %gs", name, b.GetCumulativeCount(), b.GetUpperBound())
			}
		}
	}
}

func TestScrapedMetricsCountCalls(t *testing.T) {
	r := newRig(t, metrics.Options{})
	ctx := testContext(t)
	for range 3 {
		if _, err := arbor.Call1[[]byte](ctx, r.cl, "echo", []byte("12345")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := arbor.Call1[int](ctx, r.cl, "fail", "x"); arbor.CodeOf(err) != arbor.Internal {
		t.Fatalf("fail: %v", err)
	}
	if _, err := arbor.Call0[int](ctx, r.cl, "no-such-function"); arbor.CodeOf(err) != arbor.Unimplemented {
		t.Fatalf("unknown function: %v", err)
	}
	st, err := arbor.CallServerStream[int](ctx, r.cl, "count", 4)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := st.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
	f := r.scrape(t)
	for _, side := range []string{"server", "client"} {
		calls := "arbor_" + side + "_calls_total"
		if got := value(t, f, calls, map[string]string{"function": "echo", "code": "OK"}); got != 3 {
			t.Errorf("%s{echo,OK} = %v, want 3", calls, got)
		}
		if got := value(t, f, calls, map[string]string{"function": "fail", "code": "Internal"}); got != 1 {
			t.Errorf("%s{fail,Internal} = %v, want 1", calls, got)
		}
		if got := value(t, f, calls, map[string]string{"function": "count", "code": "OK"}); got != 1 {
			t.Errorf("%s{count,OK} = %v, want 1", calls, got)
		}
		hist := "arbor_" + side + "_call_duration_seconds"
		if got := value(t, f, hist, map[string]string{"function": "echo"}); got != 3 {
			t.Errorf("%s{echo} count = %v, want 3", hist, got)
		}
		if got := value(t, f, "arbor_"+side+"_calls_in_flight", map[string]string{"function": "echo"}); got != 0 {
			t.Errorf("%s in flight = %v after the calls returned", side, got)
		}
	}
	// The server collapses an id it does not know; the client, which
	// cannot know, gives it its own label (bounded by MaxFunctions).
	if got := value(t, f, "arbor_server_calls_total", map[string]string{"function": metrics.OtherFunction, "code": "Unimplemented"}); got != 1 {
		t.Errorf("server _other = %v, want 1", got)
	}
	if _, ok := lookup(f, "arbor_server_calls_total", map[string]string{"function": "no-such-function"}); ok {
		t.Error("the server gave an unknown function id a label of its own")
	}
	// Bytes: echo's argument is a 1-element array (1 byte) of a 5-byte
	// bin (2+5), its result the bin (7), three times.
	if got := value(t, f, "arbor_server_received_bytes_total", map[string]string{"function": "echo"}); got != 24 {
		t.Errorf("server received %v bytes for echo, want 24", got)
	}
	if got := value(t, f, "arbor_server_sent_bytes_total", map[string]string{"function": "echo"}); got != 21 {
		t.Errorf("server sent %v bytes for echo, want 21", got)
	}
	if got := value(t, f, "arbor_client_sent_bytes_total", map[string]string{"function": "echo"}); got != 24 {
		t.Errorf("client sent %v bytes for echo, want 24", got)
	}
	for _, side := range []string{"server", "client"} {
		if got := value(t, f, "arbor_connections_open", map[string]string{"side": side}); got != 1 {
			t.Errorf("connections_open{%s} = %v, want 1", side, got)
		}
		if got := value(t, f, "arbor_streams_total", map[string]string{"side": side}); got != 1 {
			t.Errorf("streams_total{%s} = %v, want 1", side, got)
		}
		if got := value(t, f, "arbor_streams_open", map[string]string{"side": side}); got != 0 {
			t.Errorf("streams_open{%s} = %v, want 0", side, got)
		}
	}
	// Every family has help text and a name in Prometheus's form.
	for name, fam := range f {
		if !strings.HasPrefix(name, "arbor_") || fam.GetHelp() == "" {
			t.Errorf("family %s: help %q", name, fam.GetHelp())
		}
		if fam.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
}

func TestScrapedTreeMetrics(t *testing.T) {
	r := newRig(t, metrics.Options{})
	ctx := testContext(t)
	n := request.New("add+mem", request.New("add+mem", 1, 2), 3)
	for range 2 {
		if v, err := tree.Resolve[int](ctx, r.cl, n); err != nil || v != 6 {
			t.Fatalf("resolve: %v %v", v, err)
		}
	}
	id, err := tree.Submit(ctx, r.cl, request.New("add+mem", 10, 20))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := tree.Result[int](ctx, r.cl, id); err != nil || v != 30 {
		t.Fatalf("result: %v %v", v, err)
	}
	f := r.scrape(t)
	// First resolution: two misses (root, subrequest); the second is a
	// memory hit of the root, answered without building the tree.
	if got := value(t, f, "arbor_tree_cache_misses_total", map[string]string{"level": "mem", "tier": "memory"}); got != 3 {
		t.Errorf("misses = %v, want 3 (root, subrequest, the submitted tree)", got)
	}
	if got := value(t, f, "arbor_tree_cache_hits_total", map[string]string{"level": "mem", "tier": "memory"}); got != 1 {
		t.Errorf("hits = %v, want 1", got)
	}
	if got := value(t, f, "arbor_trees_total", map[string]string{"mode": "sync", "result": "ok"}); got != 2 {
		t.Errorf("sync trees = %v, want 2", got)
	}
	if got := value(t, f, "arbor_trees_total", map[string]string{"mode": "async", "result": "ok"}); got != 1 {
		t.Errorf("async trees = %v, want 1", got)
	}
	if got := value(t, f, "arbor_trees_in_flight", map[string]string{"mode": "async"}); got != 0 {
		t.Errorf("async trees in flight = %v", got)
	}
	if got := value(t, f, "arbor_tree_cache_entries", map[string]string{"tier": "memory"}); got != 3 {
		t.Errorf("memory entries = %v, want 3", got)
	}
	if got := value(t, f, "arbor_tree_cache_max_bytes", map[string]string{"tier": "memory"}); got != 1<<20 {
		t.Errorf("memory bound = %v", got)
	}
	if got := value(t, f, "arbor_trees_held", nil); got != 1 {
		t.Errorf("trees held = %v, want 1", got)
	}
}

// A client naming ever new functions cannot grow the label set.
func TestFunctionLabelsBounded(t *testing.T) {
	r := newRig(t, metrics.Options{MaxFunctions: 3})
	ctx := testContext(t)
	for i := range 20 {
		arbor.Call0[int](ctx, r.cl, fmt.Sprintf("made-up-%d", i))
	}
	f := r.scrape(t)
	fam := f["arbor_client_calls_total"]
	if fam == nil {
		t.Fatal("no client calls in the scrape")
	}
	labels := map[string]bool{}
	for _, m := range fam.Metric {
		for _, lp := range m.Label {
			if lp.GetName() == "function" {
				labels[lp.GetValue()] = true
			}
		}
	}
	if len(labels) != 4 || !labels[metrics.OtherFunction] {
		t.Errorf("client function labels %v, want 3 and %s", labels, metrics.OtherFunction)
	}
	if got := value(t, f, "arbor_client_calls_total", map[string]string{"function": metrics.OtherFunction}); got != 17 {
		t.Errorf("_other counted %v calls, want 17", got)
	}
	// On the server, none of them is in the catalog.
	if got := value(t, f, "arbor_server_calls_total", map[string]string{"function": metrics.OtherFunction}); got != 20 {
		t.Errorf("server _other counted %v calls, want 20", got)
	}
}

func TestInterceptorsCountInProcessCalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := arbor.NewServer(arbor.WithInterceptors(m.ServerInterceptor()))
	defer srv.Close()
	must(t, arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	args := []byte{0x92, 0x01, 0x02} // [1, 2]
	for range 4 {
		if _, err := srv.Invoke(testContext(t), "add", args); err != nil {
			t.Fatal(err)
		}
	}
	caller := arbor.CallFunc(func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
		return nil, arbor.Errorf(arbor.Unavailable, "nowhere")
	})
	wrapped := m.ClientInterceptor()(caller)
	arbor.Call0[int](testContext(t), wrapped, "far")
	byName := gather(t, reg)
	if got := value(t, byName, "arbor_server_calls_total", map[string]string{"function": "add", "code": "OK"}); got != 4 {
		t.Errorf("server add = %v, want 4", got)
	}
	if got := value(t, byName, "arbor_client_calls_total", map[string]string{"function": "far", "code": "Unavailable"}); got != 1 {
		t.Errorf("client far = %v, want 1", got)
	}
	fs := m.Functions("server")
	if len(fs) != 1 || fs[0].Function != "add" || fs[0].Calls != 4 || fs[0].Errors != 0 || fs[0].P50 <= 0 {
		t.Errorf("Functions(server) = %+v", fs)
	}
}

func TestNewRefusesADuplicateRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.New(reg, metrics.Options{}); err == nil {
		t.Fatal("a second Metrics with the same names registered")
	}
	if _, err := metrics.New(reg, metrics.Options{ConstLabels: prometheus.Labels{"instance": "b"}}); err == nil {
		t.Fatal("same names with other const labels should still collide in one registry")
	}
	if _, err := metrics.New(reg, metrics.Options{Namespace: "other"}); err != nil {
		t.Fatalf("another namespace: %v", err)
	}
	if _, err := metrics.New(nil, metrics.Options{}); err == nil {
		t.Fatal("nil registry accepted")
	}
}

func TestClusterMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	det := cluster.NewPhiDetector(cluster.PhiConfig{})
	cfg := func(name string, seeds ...string) cluster.Config {
		return cluster.Config{Name: name, BindAddr: "127.0.0.1", Seeds: seeds, JoinTimeout: 5 * time.Second,
			RPCAddrs: []string{"tcp://127.0.0.1:7000"}}
	}
	ctx := testContext(t)
	a, err := cluster.Join(ctx, nil, cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := cluster.Join(ctx, nil, cfg("b", a.GossipAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Members(cluster.Filter{})) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	now := time.Now()
	for i := 10; i > 0; i-- { // b was heard every 100ms until a second ago
		det.Heartbeat("b", now.Add(-time.Duration(i)*100*time.Millisecond-time.Second))
	}
	m.WatchCluster(a, det)
	rec := m.Cluster()
	rec.Retried("get")
	rec.Retried("get")
	rec.Hedged("get")
	rec.RetryBudgetRefused("put")

	byName := gather(t, reg)
	if got := value(t, byName, "arbor_cluster_members", map[string]string{"state": "alive"}); got != 2 {
		t.Errorf("alive members = %v, want 2", got)
	}
	if got := value(t, byName, "arbor_cluster_members", map[string]string{"state": "suspect"}); got != 0 {
		t.Errorf("suspect members = %v, want 0", got)
	}
	if got := value(t, byName, "arbor_cluster_phi", map[string]string{"peer": "b"}); got < 1 {
		t.Errorf("phi of b, silent for 1s after 100ms heartbeats, = %v; want well above 1", got)
	}
	if _, ok := lookup(byName, "arbor_cluster_phi", map[string]string{"peer": "a"}); ok {
		t.Error("phi reported for the local node")
	}
	if got := value(t, byName, "arbor_cluster_retries_total", map[string]string{"function": "get"}); got != 2 {
		t.Errorf("retries = %v", got)
	}
	if got := value(t, byName, "arbor_cluster_hedges_total", map[string]string{"function": "get"}); got != 1 {
		t.Errorf("hedges = %v", got)
	}
	if got := value(t, byName, "arbor_cluster_retry_budget_refusals_total", map[string]string{"function": "put"}); got != 1 {
		t.Errorf("refusals = %v", got)
	}
	ms := m.Members()
	if len(ms) != 2 || !ms[0].Local || ms[1].Name != "b" || ms[1].Phi < 1 {
		t.Errorf("Members() = %+v", ms)
	}
}

// wrapObserver forwards to an observer of its own: a filter, say, in
// front of a combination (not combined through conn.Observers).
type wrapObserver struct{ conn.Observer }

// Metrics observers behind a wrapper share their Keep slot with one
// outside it; each still counts every call it saw start, once.
func TestWrappedObserversCountTheirOwnCalls(t *testing.T) {
	var regs []*prometheus.Registry
	var obs []conn.Observer
	for range 3 {
		reg := prometheus.NewRegistry()
		m, err := metrics.New(reg, metrics.Options{})
		if err != nil {
			t.Fatal(err)
		}
		regs, obs = append(regs, reg), append(obs, m.Observer())
	}
	srv := arbor.NewServer(arbor.WithObserver(obs[0], wrapObserver{conn.Observers(obs[1], obs[2])}))
	must(t, arbor.Handle1(srv, "echo", func(ctx context.Context, p []byte) ([]byte, error) { return p, nil }))
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := arbor.Dial(testContext(t), l.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); srv.Close() })
	const calls = 5
	for range calls {
		if _, err := arbor.Call1[[]byte](testContext(t), cl, "echo", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i, reg := range regs {
		byName := gather(t, reg)
		if got := value(t, byName, "arbor_server_calls_total", map[string]string{"function": "echo", "code": "OK"}); got != calls {
			t.Errorf("metrics %d: %v calls ended, want %d", i, got, calls)
		}
		if got := value(t, byName, "arbor_server_calls_in_flight", map[string]string{"function": "echo"}); got != 0 {
			t.Errorf("metrics %d: %v calls in flight after they all returned", i, got)
		}
	}
}

// TestClientInterceptorFollowsPromisesAndStreams: ClientInterceptor
// counts a promise in flight until its answer arrives and a stream until
// it ends, and records their outcome then (Response.OnEnd), not at the
// moment they were sent or opened.
func TestClientInterceptorFollowsPromisesAndStreams(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	must(t, err)
	srv := arbor.NewServer()
	defer srv.Close()
	gate := make(chan error)
	must(t, arbor.Handle0(srv, "gated", func(ctx context.Context) (int, error) { return 1, <-gate }))
	must(t, arbor.HandleServerStream(srv, "hold", func(ctx context.Context, _ int, out *arbor.Sender[int]) error {
		<-ctx.Done()
		return ctx.Err()
	}))
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	must(t, err)
	cl, err := arbor.Dial(testContext(t), l.URL(), arbor.WithInterceptors(m.ClientInterceptor()))
	must(t, err)
	defer cl.Close()
	ctx := testContext(t)
	series := func(fn, metric string, labels ...string) float64 {
		want := map[string]string{"function": fn}
		for i := 0; i+1 < len(labels); i += 2 {
			want[labels[i]] = labels[i+1]
		}
		v, _ := lookup(gather(t, reg), metric, want)
		return v
	}

	p := arbor.Go0[int](ctx, cl, "gated")
	if got := series("gated", "arbor_client_calls_in_flight"); got != 1 {
		t.Errorf("a promise awaiting its answer: %v in flight, want 1", got)
	}
	if got := series("gated", "arbor_client_calls_total", "code", "OK"); got != 0 {
		t.Errorf("a promise awaiting its answer counted %v calls ended OK", got)
	}
	gate <- arbor.NewError(arbor.Aborted, "no")
	if _, err := p.Wait(); arbor.CodeOf(err) != arbor.Aborted {
		t.Fatalf("Wait: %v", err)
	}
	waitUntil(t, func() bool { return series("gated", "arbor_client_calls_total", "code", "Aborted") == 1 }, "the promise's failure counted")
	if got := series("gated", "arbor_client_calls_in_flight"); got != 0 {
		t.Errorf("an answered promise: %v in flight, want 0", got)
	}

	s, err := arbor.CallServerStream[int](ctx, cl, "hold", 0)
	must(t, err)
	if got := series("hold", "arbor_client_calls_in_flight"); got != 1 {
		t.Errorf("an open stream: %v in flight, want 1", got)
	}
	s.Close()
	waitUntil(t, func() bool { return series("hold", "arbor_client_calls_total", "code", "Canceled") == 1 }, "the cancelled stream counted")
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
