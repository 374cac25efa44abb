package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/demo"
	"github.com/arbor-rpc/arbor/resolve"
)

const seedRequest = `{
"uuid": "rq_post_iss_object+full",
"title": "post_iss_object",
"args": {
"tuple_element0": "123",
"tuple_element1": "string",
"tuple_element2": {
"uuid": "uuid_100_2",
"title": "make_blob_coro",
"args": {
"tuple_element0": {
"value0": "payload"
}
}
}
}
}
`

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// resolveCalls returns how often function id ran, per arbor.resolve_catalog.
func resolveCalls(t *testing.T, addr, id string) int64 {
	t.Helper()
	code, stdout, stderr := runArbor(testContext(t), "call", addr, "arbor.resolve_catalog")
	if code != exitOK {
		t.Fatalf("resolve_catalog: %d %s", code, stderr)
	}
	var fs []struct {
		ID    string `json:"id"`
		Calls int64  `json:"calls"`
	}
	if err := json.Unmarshal([]byte(stdout), &fs); err != nil {
		t.Fatalf("resolve_catalog output %q: %v", stdout, err)
	}
	for _, f := range fs {
		if f.ID == id {
			return f.Calls
		}
	}
	t.Fatalf("%s not listed: %s", id, stdout)
	return 0
}

func TestResolveSeedExample(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", t.TempDir())
	ctx := testContext(t)
	file := writeFile(t, "req.json", seedRequest)
	want := `"` + demo.ObjectID("string", []byte("payload")) + `"` + "\n"
	code, stdout, stderr := runArbor(ctx, "resolve", s.addrs[0], file)
	if code != exitOK || stdout != want || stderr != "" {
		t.Fatalf("arbor resolve = %d, %q, %q; want %q", code, stdout, stderr, want)
	}
	// from standard input, compact, uuid last: a cache hit
	stdin = strings.NewReader(`{"args":{"tuple_element0":"123","tuple_element1":"string","tuple_element2":{"args":{"tuple_element0":{"value0":"payload"}},"uuid":"uuid_100_2"}},"uuid":"rq_post_iss_object+full"}`)
	defer func() { stdin = os.Stdin }()
	code, stdout, stderr = runArbor(ctx, "resolve", s.addrs[0], "-")
	if code != exitOK || stdout != want {
		t.Fatalf("arbor resolve - = %d, %q, %q", code, stdout, stderr)
	}
	if n := resolveCalls(t, s.addrs[0], "rq_post_iss_object+full"); n != 1 {
		t.Errorf("post_iss_object ran %d times, want 1", n)
	}
	// A blob result prints in Cradle's blob form.
	blob := writeFile(t, "blob.json", `{"uuid":"uuid_100_2","args":{"tuple_element0":{"value0":"payload"}}}`)
	code, stdout, _ = runArbor(ctx, "resolve", s.addrs[0], blob)
	if code != exitOK || stdout != `{"as_file":false,"size":7,"blob":"cGF5bG9hZA=="}`+"\n" {
		t.Errorf("blob result = %d, %q", code, stdout)
	}
}

func TestResolveErrors(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown uuid", `{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":{"uuid":"nope","args":{}}}}`,
			`error: NotFound: args.tuple_element1 (nope): unknown function "nope"` + "\n"},
		{"malformed", `{"uuid":"math_add+none","args":{"tuple_element0":1,}}`,
			"error: InvalidArgument: request JSON: malformed JSON: unexpected '}', want an object key (a string) (at byte 51)\n"},
		{"wrong type", `{"uuid":"math_add+none","args":{"tuple_element0":1,"tuple_element1":"x"}}`,
			"error: InvalidArgument: request (math_add+none): math_add+none: argument 1 (int)"},
		{"blob size", `{"uuid":"echo","args":{"tuple_element0":{"as_file":false,"size":9,"blob":"YWJj"}}}`,
			"error: InvalidArgument: request JSON: args.tuple_element0: blob size 9 disagrees with its data (3 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runArbor(ctx, "resolve", s.addrs[0], writeFile(t, "r.json", tc.body))
			if code != exitFail || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("= %d, %q, %q; want 1 and %q", code, stdout, stderr, tc.want)
			}
		})
	}
	code, _, stderr := runArbor(ctx, "resolve", s.addrs[0], filepath.Join(t.TempDir(), "missing.json"))
	if code != exitFail || !strings.HasPrefix(stderr, "error: InvalidArgument: open ") {
		t.Errorf("missing file = %d, %q", code, stderr)
	}
}

func TestSubmitStatusCancel(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	addr := s.addrs[0]
	file := writeFile(t, "r.json", `{"uuid":"math_add+none","title":"sum","args":{
		"tuple_element0":{"uuid":"sleep","title":"nap","args":{"tuple_element0":30000}},
		"tuple_element1":{"uuid":"math_mul+mem","args":{"tuple_element0":6,"tuple_element1":7}}}}`)
	code, stdout, stderr := runArbor(ctx, "submit", addr, file)
	id := strings.TrimSpace(stdout)
	if code != exitOK || len(id) != 32 {
		t.Fatalf("submit = %d, %q, %q", code, stdout, stderr)
	}
	want := `request math_add+none "sum": subrequests running
  args.tuple_element0 sleep "nap": running
  args.tuple_element1 math_mul+mem: finished
`
	for deadline := time.Now().Add(5 * time.Second); ; {
		code, stdout, stderr = runArbor(ctx, "status", addr, id)
		if code == exitOK && stdout == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %d, %q, %q; want\n%s", code, stdout, stderr, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, _, stderr := runArbor(ctx, "cancel", addr, id, "args.tuple_element7"); code != exitFail || !strings.HasPrefix(stderr, "error: NotFound: ") {
		t.Errorf("cancel of a missing node = %d, %q", code, stderr)
	}
	if code, stdout, stderr := runArbor(ctx, "cancel", addr, id, "args.tuple_element0"); code != exitOK || stdout != "" {
		t.Fatalf("cancel = %d, %q, %q", code, stdout, stderr)
	}
	code, _, stderr = runArbor(ctx, "result", addr, id)
	if code != exitFail || !strings.HasPrefix(stderr, "error: Canceled: args.tuple_element0 (sleep): sleep: canceled") {
		t.Errorf("result = %d, %q", code, stderr)
	}
	code, stdout, _ = runArbor(ctx, "status", addr, id)
	if code != exitOK || !strings.Contains(stdout, `args.tuple_element0 sleep "nap": cancelled: Canceled: args.tuple_element0 (sleep): sleep: canceled`) {
		t.Errorf("status after cancel = %d, %q", code, stdout)
	}
	if code, _, stderr := runArbor(ctx, "release", addr, id); code != exitOK {
		t.Errorf("release = %d, %q", code, stderr)
	}
	if code, _, stderr := runArbor(ctx, "status", addr, id); code != exitFail || !strings.HasPrefix(stderr, "error: NotFound: no request tree") {
		t.Errorf("status after release = %d, %q", code, stderr)
	}
	// A tree that finishes.
	code, stdout, _ = runArbor(ctx, "submit", addr, writeFile(t, "ok.json", `{"uuid":"math_mul+full","args":{"tuple_element0":6,"tuple_element1":7}}`))
	if code != exitOK {
		t.Fatal(code)
	}
	if code, out, stderr := runArbor(ctx, "result", addr, strings.TrimSpace(stdout)); code != exitOK || out != "42\n" {
		t.Errorf("result = %d, %q, %q", code, out, stderr)
	}
}

// TestResultPrintsProtoJSON: result prints a generated function's result
// as protojson, as resolve does, not as a Cradle blob of protobuf binary.
func TestResultPrintsProtoJSON(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", "")
	ctx := testContext(t)
	file := writeFile(t, "g.json", `{"uuid": "/demo.v1.Greeter/SayHello", "args": {"tuple_element0": {"name": "tree"}}}`)
	code, stdout, stderr := runArbor(ctx, "submit", s.addrs[0], file)
	if code != exitOK {
		t.Fatalf("submit = %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, stderr = runArbor(ctx, "result", s.addrs[0], strings.TrimSpace(stdout))
	if code != exitOK || !strings.HasPrefix(stdout, `{"message":"Hello, tree!","at":"`) {
		t.Errorf("result = %d, %q, %q; want protojson as resolve prints", code, stdout, stderr)
	}
}

func TestFullSurvivesServeRestart(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "r.json", `{"uuid":"math_mul+full","args":{"tuple_element0":{"uuid":"math_add+mem","args":[2,4]},"tuple_element1":7}}`)
	for round := range 2 {
		s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--cache-dir", dir, "--mem-cache-size", "16MiB")
		for range 2 {
			if code, stdout, stderr := runArbor(testContext(t), "resolve", s.addrs[0], file); code != exitOK || stdout != "42\n" {
				t.Fatalf("round %d: %d, %q, %q", round, code, stdout, stderr)
			}
		}
		if n := resolveCalls(t, s.addrs[0], "math_mul+full"); n != int64(1-round) {
			t.Errorf("round %d: math_mul+full ran %d times, want %d", round, n, 1-round)
		}
		if code := s.stop(t); code != exitOK {
			t.Fatalf("serve exited %d: %s", code, s.stderr)
		}
	}
}

func TestResolveUsage(t *testing.T) {
	ctx := testContext(t)
	for _, cmd := range []string{"resolve", "submit", "status", "result", "cancel", "release"} {
		code, _, stderr := runArbor(ctx, cmd, "-h")
		if code != exitUsage || !strings.HasPrefix(stderr, "Usage: arbor "+cmd) {
			t.Errorf("arbor %s -h = %d, %q", cmd, code, stderr)
		}
	}
	for _, args := range [][]string{
		{"resolve"}, {"resolve", "a"}, {"resolve", "a", "b", "c"},
		{"submit", "a"},
		{"status", "a"}, {"result", "a", "b", "c"}, {"release"},
		{"cancel", "a"}, {"cancel", "a", "b", "c", "d"},
		{"serve", "--mem-cache-size", "lots"},
		{"serve", "--mem-cache-size", "0"},
		{"serve", "--disk-cache-size", "1XB"},
	} {
		if code, stdout, stderr := runArbor(ctx, args...); code != exitUsage || stdout != "" || stderr == "" {
			t.Errorf("arbor %q = %d, %q, %q; want a usage error", args, code, stdout, stderr)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "1024": 1024, "1KiB": 1 << 10, "2 MiB": 2 << 20, "1GiB": 1 << 30, "3g": 3 << 30, "1TB": 1 << 40, "7b": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "0", "1PiB", "99999999999999999999", "9000000TiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestFormatStatus(t *testing.T) {
	st := &resolve.Status{Path: "request", UUID: "f", Title: "t", State: resolve.Failed, Error: "boom\nbang", Attempts: 3,
		Subrequests: []*resolve.Status{{Path: "args.tuple_element0", UUID: "g", State: resolve.Finished, Cached: true}}}
	want := "request f \"t\": failed (3 attempts): boom bang\n  args.tuple_element0 g: finished (cached)\n"
	if got := string(formatStatus(st)); got != want {
		t.Errorf("formatStatus =\n%s\nwant\n%s", got, want)
	}
}

// startRedisServer runs a private redis-server on a loopback port for the
// test, or skips it when there is none (package cache's tests insist).
func startRedisServer(t *testing.T) string {
	t.Helper()
	url, _ := startRedisProc(t)
	return url
}

// startRedisProc is startRedisServer that also gives the process, to kill.
func startRedisProc(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil || os.Getenv("ARBOR_SKIP_REDIS") == "1" {
		t.Skip("no redis-server")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", t.TempDir(), "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return "redis://" + addr + "/0", cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not start", addr)
		}
	}
}

// TestRedisSharedByTwoServers: a +full result computed by one server is a
// cache hit on another that shares the Redis.
func TestRedisSharedByTwoServers(t *testing.T) {
	url := startRedisServer(t)
	file := writeFile(t, "r.json", `{"uuid":"math_mul+full","args":{"tuple_element0":6,"tuple_element1":7}}`)
	a := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--redis", url)
	b := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--redis", url)
	for _, s := range []*server{a, b} {
		if code, stdout, stderr := runArbor(testContext(t), "resolve", s.addrs[0], file); code != exitOK || stdout != "42\n" {
			t.Fatalf("resolve = %d, %q, %q", code, stdout, stderr)
		}
	}
	if na, nb := resolveCalls(t, a.addrs[0], "math_mul+full"), resolveCalls(t, b.addrs[0], "math_mul+full"); na+nb != 1 {
		t.Errorf("math_mul+full ran %d + %d times across two servers sharing Redis, want 1", na, nb)
	}
}

// With --redis and a --cache-dir, the disk sits in front of Redis: a
// server restarted while Redis is dead still answers a +full tree it
// computed before, from its disk, without running anything.
func TestRedisOutageLeavesTheDisk(t *testing.T) {
	url, redis := startRedisProc(t)
	dir := t.TempDir()
	file := writeFile(t, "r.json", `{"uuid":"math_mul+full","args":{"tuple_element0":6,"tuple_element1":8}}`)
	a := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--redis", url, "--cache-dir", dir)
	if code, stdout, stderr := runArbor(testContext(t), "resolve", a.addrs[0], file); code != exitOK || stdout != "48\n" {
		t.Fatalf("resolve = %d, %q, %q", code, stdout, stderr)
	}
	if !strings.Contains(a.stderr.String(), "redis=") || !strings.Contains(a.stderr.String(), "disk=") {
		t.Fatalf("serve did not say it caches on disk and in Redis:\n%s", a.stderr)
	}
	a.stop(t)
	redis.Process.Kill()
	redis.Wait()
	b := startServe(t, 1, "--listen", "tcp://127.0.0.1:0", "--redis", url, "--cache-dir", dir)
	if code, stdout, stderr := runArbor(testContext(t), "resolve", b.addrs[0], file); code != exitOK || stdout != "48\n" {
		t.Fatalf("resolve with Redis dead = %d, %q, %q", code, stdout, stderr)
	}
	if n := resolveCalls(t, b.addrs[0], "math_mul+full"); n != 0 {
		t.Fatalf("math_mul+full ran %d times after the restart; want the disk's answer", n)
	}
}
