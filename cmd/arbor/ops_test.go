package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// startServeAdmin runs `arbor serve --listen tcp://127.0.0.1:0 args...`
// in process and returns its listening address and admin URL.
func startServeAdmin(t *testing.T, args ...string) (addr, adminURL string, s *server) {
	t.Helper()
	s = serveUntil(t, append([]string{"--listen", "tcp://127.0.0.1:0", "--cache-dir", ""}, args...), func(line string) bool {
		if a, ok := strings.CutPrefix(line, "listening on "); ok {
			addr = a
		} else if u, ok := strings.CutPrefix(line, "admin on "); ok {
			adminURL = u
		} else {
			t.Fatalf("serve printed %q", line)
		}
		return addr != "" && adminURL != ""
	})
	return addr, adminURL, s
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeAdmin(t *testing.T) {
	addr, adm, _ := startServeAdmin(t, "--admin", ":0")
	if !strings.HasPrefix(adm, "http://127.0.0.1:") {
		t.Errorf("--admin :0 bound %s, want loopback", adm)
	}
	ctx := testContext(t)
	for range 3 {
		if code, out, errs := runArbor(ctx, "call", addr, "add", "2", "3"); code != 0 || out != "5\n" {
			t.Fatalf("call: %d %q %q", code, out, errs)
		}
	}
	code, body := get(t, adm+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	if got := counter(fams["arbor_server_calls_total"], map[string]string{"function": "add", "code": "OK"}); got != 3 {
		t.Errorf("arbor_server_calls_total{add,OK} = %v, want 3", got)
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("serve's registry lacks the Go and process collectors")
	}
	if code, body := get(t, adm+"/healthz"); code != 200 || !strings.Contains(body, `"SERVING"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get(t, adm+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", code)
	}
	if code, body := get(t, adm+"/"); code != 200 || !strings.Contains(body, "Arbor console") {
		t.Errorf("console: %d", code)
	}
	if code, out, _ := runArbor(ctx, "health", addr); code != 0 || out != "SERVING\n" {
		t.Errorf("arbor health = %d %q, want 0 SERVING", code, out)
	}
}

func counter(f *dto.MetricFamily, want map[string]string) float64 {
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
				continue next
			}
		}
		return m.GetCounter().GetValue()
	}
	return -1
}

func TestServeAdminToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, adm, _ := startServeAdmin(t, "--admin", "127.0.0.1:0", "--admin-token-file", tokenFile)
	for _, path := range []string{"/metrics", "/healthz", "/", "/api/snapshot", "/debug/pprof/"} {
		if code, _ := get(t, adm+path); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
		if code, _ := get(t, adm+path, "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
	}
	if code, _ := get(t, adm+"/metrics", "Authorization", "Bearer s3cret"); code != 200 {
		t.Errorf("/metrics with the token: %d", code)
	}
	if code, _ := get(t, adm+"/api/snapshot?token=s3cret"); code != 200 {
		t.Errorf("?token=: %d", code)
	}
}

func TestServeAdminFlags(t *testing.T) {
	ctx := testContext(t)
	for _, args := range [][]string{
		{"serve", "--admin-token", "x"},     // a token without an endpoint
		{"serve", "--admin", "127.0.0.1"},   // no port
		{"serve", "--admin", "1.2.3.4:5:6"}, // not an address
		{"serve", "--admin", ":0", "--admin-token-file", "/nonexistent/token"},
	} {
		if code, _, stderr := runArbor(ctx, args...); code != exitUsage || stderr == "" {
			t.Errorf("arbor %q = %d (%s), want a usage error", args, code, stderr)
		}
	}
}

func TestHealthCommand(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	if code, out, errs := runArbor(ctx, "health", s.addrs[0]); code != 0 || out != "SERVING\n" || errs != "" {
		t.Errorf("health = %d %q %q", code, out, errs)
	}
	if code, _, errs := runArbor(ctx, "health", "--service", "nope", s.addrs[0]); code != exitFail || !strings.Contains(errs, "nope") {
		t.Errorf("health --service nope = %d %q, want 1 naming the service", code, errs)
	}
	s.stop(t)
	if code, _, errs := runArbor(ctx, "health", "--timeout", "2s", s.addrs[0]); code != exitFail || !strings.HasPrefix(errs, "error: ") {
		t.Errorf("health of a stopped server = %d %q, want 1", code, errs)
	}
	if code, _, _ := runArbor(ctx, "health"); code != exitUsage {
		t.Errorf("health without ADDR = %d", code)
	}
}

func TestBenchCommand(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	out := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runArbor(ctx, "bench", "-c", "8", "-n", "2000", "--connections", "2", "--out", out, s.addrs[0], "add", "2", "3")
	if code != 0 {
		t.Fatalf("bench = %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"calls/s:", "p50", "p99.9", "Latency histogram:", "■", "OK", "2000"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the report lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("not a terminal, yet a progress bar was drawn: %q", stderr)
	}
	// 2000 calls take well under the one-second tick: the closing line
	// is the only progress, and it must be there with the whole count.
	if !strings.Contains(stderr, " 2000 calls ") {
		t.Errorf("a run shorter than a tick printed no closing progress line: %q", stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep BenchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("--out is not JSON: %v\n%s", err, b)
	}
	var inHist uint64
	for _, bk := range rep.Histogram {
		inHist += bk.Count
	}
	if rep.Calls != 2000 || rep.Errors != 0 || rep.ByCode["OK"] != 2000 || rep.Connections != 2 || rep.CallsPerSec <= 0 || inHist != 2000 {
		t.Errorf("report %+v (histogram holds %d)", rep, inHist)
	}
	l := rep.Latency
	if !(l.Min > 0 && l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Errorf("latencies out of order: %+v", l)
	}

	// A duration and a rate: about rate × duration calls.
	code, stdout, stderr = runArbor(ctx, "bench", "-c", "4", "-d", "1s", "--rate", "200", "--out", out, s.addrs[0], "add", "1", "1")
	if code != 0 {
		t.Fatalf("bench -d --rate = %d\n%s\n%s", code, stdout, stderr)
	}
	b, _ = os.ReadFile(out)
	rep = BenchReport{}
	json.Unmarshal(b, &rep)
	if rep.Calls < 150 || rep.Calls > 230 {
		t.Errorf("--rate 200 for 1s made %d calls", rep.Calls)
	}
	if !strings.Contains(stderr, "calls/s") {
		t.Errorf("no progress lines on stderr: %q", stderr)
	}

	// Wrong arguments or an unknown function stop before the run.
	code, _, stderr = runArbor(ctx, "bench", "-c", "2", "-n", "10", s.addrs[0], "sleep", "-1")
	if code != exitFail || !strings.Contains(stderr, "first call of sleep failed") {
		t.Errorf("bench with a bad argument = %d %q", code, stderr)
	}
	code, _, stderr = runArbor(ctx, "bench", "-n", "10", s.addrs[0], "nosuch")
	if code != exitFail || !strings.Contains(stderr, "first call of nosuch failed") {
		t.Errorf("bench of an unknown function = %d %q", code, stderr)
	}
	for _, args := range [][]string{
		{"bench"},
		{"bench", s.addrs[0]},
		{"bench", "-n", "5", "-d", "1s", s.addrs[0], "add"},
		{"bench", "-c", "0", s.addrs[0], "add"},
		{"bench", s.addrs[0] + "," + s.addrs[0], "add"},
		{"bench", s.addrs[0], "add", "{bad json"},
	} {
		if code, _, stderr := runArbor(ctx, args...); code != exitUsage || stderr == "" {
			t.Errorf("arbor %q = %d, want a usage error", args, code)
		}
	}
}

// Calls carry no deadline (a cancellable context costs each call a
// select), so the ones still running --timeout after the end of the run
// are given up by closing the connections: the run ends, counting them as
// failed, instead of waiting for them.
func TestBenchGivesUpOnCallsPastTheEnd(t *testing.T) {
	checkGivenUp(t, 2, "-c", "2", "-d", "200ms")
}

// checkGivenUp runs arbor bench with flags and --timeout 500ms on calls
// that take a minute, and checks that it ends soon, failing, with its
// want calls reported as given up.
func checkGivenUp(t *testing.T, want int, flags ...string) {
	t.Helper()
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	out := filepath.Join(t.TempDir(), "r.json")
	t0 := time.Now()
	args := append(append([]string{"bench"}, flags...), "--timeout", "500ms", "--out", out, s.addrs[0], "sleep", "60000")
	code, stdout, stderr := runArbor(ctx, args...)
	if took := time.Since(t0); code != exitFail || took > 8*time.Second {
		t.Fatalf("bench %v of 60 s calls with --timeout 500ms = %d after %v\n%s\n%s", flags, code, took, stdout, stderr)
	}
	b, _ := os.ReadFile(out)
	var rep BenchReport
	json.Unmarshal(b, &rep)
	if rep.Calls != uint64(want) || rep.Errors != uint64(want) || rep.ByCode["Canceled"] != int64(want) || !strings.Contains(rep.FirstErrors["Canceled"], "--timeout") {
		t.Errorf("report of %d calls given up: %+v", want, rep)
	}
}

// Some calls fail: the report counts them by code and exits 1.
func TestBenchCountsErrorsByCode(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runArbor(ctx, "bench", "-c", "2", "-n", "6", "--out", out, s.addrs[0], "fail", `"boom"`)
	if code != exitFail || !strings.Contains(stdout, "Internal") || !strings.Contains(stdout, "boom") {
		t.Errorf("bench fail = %d\n%s\n%s", code, stdout, stderr)
	}
	b, _ := os.ReadFile(out)
	var rep BenchReport
	json.Unmarshal(b, &rep)
	if rep.Calls != 6 || rep.Errors != 6 || rep.ByCode["Internal"] != 6 || !strings.Contains(rep.FirstErrors["Internal"], "boom") {
		t.Errorf("report of failing calls: %+v", rep)
	}
	// Over a cluster of one live node listed twice, every call succeeds
	// and goes to both clients.
	code, stdout, stderr = runArbor(ctx, "bench", "--cluster", "-n", "100", "--out", out, s.addrs[0]+","+s.addrs[0], "add", "1", "2")
	if code != 0 || !bytes.Contains([]byte(stdout), []byte("2 connection(s)")) {
		t.Errorf("bench --cluster = %d\n%s\n%s", code, stdout, stderr)
	}
}

// Flag values that cannot mean anything are refused with a usage error,
// before any call: a rate of NaN or Inf used to run unlimited and write
// an --out file holding no JSON (the report's Rate could not be
// encoded), exiting 0; --timeout 0 failed the dial at once with a bare
// "context deadline exceeded".
func TestBenchRefusesNonsenseFlags(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	out := filepath.Join(t.TempDir(), "r.json")
	for _, flags := range [][]string{
		{"--rate", "NaN"},
		{"--rate", "Inf"},
		{"--rate", "-Inf"},
		{"--timeout", "0"},
		{"--timeout", "-1s"},
		{"--warmup", "-1s"},
	} {
		os.Remove(out)
		args := append(append([]string{"bench", "-n", "20", "--out", out}, flags...), s.addrs[0], "add", "1", "2")
		code, stdout, stderr := runArbor(ctx, args...)
		if code != exitUsage || !strings.Contains(stderr, flags[0]) {
			t.Errorf("arbor bench %s = %d, want a usage error naming %s\n%s%s", strings.Join(flags, " "), code, flags[0], stdout, stderr)
		}
		if b, err := os.ReadFile(out); err == nil {
			var rep BenchReport
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Errorf("arbor bench %s wrote an --out that is not JSON: %q", strings.Join(flags, " "), b)
			}
		}
	}
}

// A rate so low that the second call's time does not fit a
// time.Duration is still honoured: the first call goes at once, the
// second not within the run (it used to wrap around into the past, and
// every call went at once).
func TestBenchVeryLowRate(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	out := filepath.Join(t.TempDir(), "r.json")
	code, stdout, stderr := runArbor(ctx, "bench", "-c", "2", "-d", "300ms", "--rate", "1e-10", "--out", out, s.addrs[0], "add", "1", "2")
	if code != exitOK {
		t.Fatalf("bench --rate 1e-10 = %d\n%s\n%s", code, stdout, stderr)
	}
	b, _ := os.ReadFile(out)
	var rep BenchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("--out: %v: %q", err, b)
	}
	if rep.Calls != 1 {
		t.Errorf("--rate 1e-10 for 300ms made %d calls, want 1", rep.Calls)
	}
}

// With -n, the run ends when its last call has gone out: the calls still
// running --timeout after that are given up, as they are after -d,
// instead of the run waiting on them for as long as the server takes (for
// good, on a call that never answers).
func TestBenchGivesUpOnCallsPastTheEndOfN(t *testing.T) {
	checkGivenUp(t, 4, "-c", "4", "-n", "4")
}
