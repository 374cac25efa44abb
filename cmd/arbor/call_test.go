package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testcerts"
)

func TestCall(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	addr := s.addrs[0]
	ctx := testContext(t)
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string // a prefix
	}{
		{[]string{"add", "2", "3"}, 0, "5\n", ""},
		{[]string{"add", "-4", "1e0"}, 0, "-3\n", ""},
		{[]string{"add", "4611686018427387904", "4611686018427387903"}, 0, "9223372036854775807\n", ""},
		{[]string{"concat", `"<a&"`, `"b>"`}, 0, "\"<a&b>\"\n", ""},
		{[]string{"echo", `"hi"`}, 0, "\"aGk=\"\n", ""},
		{[]string{"sleep", "1"}, 0, "1\n", ""},
		{[]string{"nope"}, 1, "", "error: Unimplemented: unknown function \"nope\"\n"},
		{[]string{"add", "1", `"x"`}, 1, "", "error: InvalidArgument: add: argument 1 (int): "},
		{[]string{"add", "1"}, 1, "", "error: InvalidArgument: add takes 2 argument(s)"},
		{[]string{"fail", `"boom: it broke"`}, 1, "", "error: Internal: boom: it broke\n"},
		{[]string{"sleep", "-1"}, 1, "", "error: InvalidArgument: sleep: negative duration"},
		{[]string{"add", "1", "x"}, 2, "", "arbor call: argument 1 is not a JSON value"},
		{[]string{"add", "1", "2 3"}, 2, "", "arbor call: argument 1 is not a JSON value: more than one value"},
		{[]string{"add", "", "2"}, 2, "", "arbor call: argument 0 is not a JSON value: empty"},
	} {
		code, stdout, stderr := runArbor(ctx, append([]string{"call", addr}, tc.args...)...)
		if code != tc.code || stdout != tc.stdout || !strings.HasPrefix(stderr, tc.stderr) || (tc.stderr == "") != (stderr == "") {
			t.Errorf("arbor call ADDR %q = %d, stdout %q, stderr %q; want %d, %q, %q...",
				tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	if code := s.stop(t); code != exitOK {
		t.Errorf("serve exited %d, want 0; stderr:\n%s", code, s.stderr)
	}
}

func TestCallTimeout(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	begin := time.Now()
	code, stdout, stderr := runArbor(testContext(t), "call", "--timeout", "50ms", s.addrs[0], "sleep", "60000")
	// The deadline travels with the call, so the handler may report it
	// before the caller's own timer fires.
	if code != exitFail || stdout != "" || !strings.HasPrefix(stderr, "error: DeadlineExceeded: ") {
		t.Errorf("call past its timeout = %d, %q, %q; want 1 and a DeadlineExceeded error", code, stdout, stderr)
	}
	t.Logf("stderr: %s", strings.TrimSpace(stderr))
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("call with --timeout 50ms took %v", d)
	}
}

func TestCallCanceled(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	ctx, cancel := context.WithCancel(testContext(t))
	time.AfterFunc(50*time.Millisecond, cancel)
	code, _, stderr := runArbor(ctx, "call", s.addrs[0], "sleep", "60000")
	if code != exitFail || !strings.HasPrefix(stderr, "error: Canceled") {
		t.Errorf("interrupted call = %d, %q; want 1 and a Canceled error", code, stderr)
	}
}

func TestCallUnreachable(t *testing.T) {
	ctx := testContext(t)
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	addr := s.addrs[0]
	s.stop(t) // nothing listens there now
	code, _, stderr := runArbor(ctx, "call", addr, "add", "1", "2")
	if code != exitFail || !strings.HasPrefix(stderr, "error: Unavailable: dial "+addr) {
		t.Errorf("call to a closed port = %d, %q; want 1 and Unavailable", code, stderr)
	}
	code, _, stderr = runArbor(ctx, "call", "bogus", "add", "1", "2")
	if code != exitFail || !strings.HasPrefix(stderr, "error: InvalidArgument: dial bogus") {
		t.Errorf("call to a malformed address = %d, %q; want 1 and InvalidArgument", code, stderr)
	}
}

func TestCatalog(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	code, stdout, stderr := runArbor(testContext(t), "catalog", s.addrs[0])
	want := "/demo.v1.Greeter/SayHello(demo.v1.HelloRequest) demo.v1.HelloReply\n" +
		"/demo.v1.Greeter/SayHellos(demo.v1.HellosRequest) stream demo.v1.HelloReply\n" +
		"add(int, int) int\n" +
		"chat(stream string) stream string\n" +
		"concat(string, string) string\n" +
		"count(int) stream int\n" +
		"echo(bytes) bytes\n" +
		"fail(string) struct {}\n" +
		"get_iss_object(string) bytes\n" +
		"math_add+full(int, int) int\n" +
		"math_add+full_vb(int, int) int\n" +
		"math_add+mem(int, int) int\n" +
		"math_add+mem_vb(int, int) int\n" +
		"math_add+none(int, int) int\n" +
		"math_mul+full(int, int) int\n" +
		"math_mul+full_vb(int, int) int\n" +
		"math_mul+mem(int, int) int\n" +
		"math_mul+mem_vb(int, int) int\n" +
		"math_mul+none(int, int) int\n" +
		"rq_post_iss_object+full(string, string, bytes) string\n" +
		"sleep(int) int\n" +
		"sum(stream int) int\n" +
		"uuid_100_2(demo.Payload) bytes\n" +
		"whoami() string\n"
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("arbor catalog = %d, stdout %q, stderr %q; want 0 and\n%s", code, stdout, stderr, want)
	}
}

// TestServeListeners serves on TCP and a Unix socket at once.
func TestServeListeners(t *testing.T) {
	dir, err := os.MkdirTemp("", "arbor") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := "unix:" + filepath.Join(dir, "s")
	s := startServe(t, 2, "--listen", "tcp://127.0.0.1:0", "--listen", sock, "--log-level", "debug")
	if strings.HasSuffix(s.addrs[0], ":0") || !strings.HasPrefix(s.addrs[0], "tcp://127.0.0.1:") {
		t.Errorf("listening on %q, want the port actually bound", s.addrs[0])
	}
	if s.addrs[1] != sock {
		t.Errorf("listening on %q, want %q", s.addrs[1], sock)
	}
	ctx := testContext(t)
	for _, addr := range s.addrs {
		if code, stdout, stderr := runArbor(ctx, "call", addr, "concat", `"a"`, `"b"`); code != 0 || stdout != "\"ab\"\n" {
			t.Errorf("call %s concat = %d, %q, %q; want \"ab\"", addr, code, stdout, stderr)
		}
	}
	if code := s.stop(t); code != exitOK {
		t.Errorf("serve exited %d, want 0", code)
	}
	if logs := s.stderr.String(); !strings.Contains(logs, "msg=listening") || !strings.Contains(logs, "msg=stopped") {
		t.Errorf("serve logged:\n%s\nwant listening and stopped messages", logs)
	}
	if _, err := os.Stat(filepath.Join(dir, "s")); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
}

// TestServeListenError checks that a listener that cannot bind fails the
// command, and that the listeners already bound are released.
func TestServeListenError(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	code, stdout, stderr := runArbor(testContext(t), "serve", "--listen", "tcp://127.0.0.1:0", "--listen", s.addrs[0])
	if code != exitFail || stdout != "" || !strings.HasPrefix(stderr, "error: listen "+s.addrs[0]) {
		t.Errorf("serve on a busy port = %d, %q, %q; want 1 and a listen error", code, stdout, stderr)
	}
}

// TestServeGracefulShutdown stops the server while a call runs: the call
// completes and the server exits 0.
func TestServeGracefulShutdown(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	ctx := testContext(t)
	c, err := arbor.Dial(ctx, s.addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := arbor.Call2[int](ctx, c, "add", 1, 1); err != nil { // the connection is up
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	var got int
	go func() {
		defer wg.Done()
		got, err = arbor.Call1[int](ctx, c, "sleep", 1000)
	}()
	time.Sleep(200 * time.Millisecond) // let the call reach the server
	if code := s.stop(t); code != exitOK {
		t.Errorf("serve exited %d, want 0; stderr:\n%s", code, s.stderr)
	}
	wg.Wait()
	if err != nil || got != 1000 {
		t.Errorf("call running during shutdown = %d, %v; want 1000", got, err)
	}
}

func TestTLS(t *testing.T) {
	certs := testcerts.Write(t, t.TempDir())
	s := startServe(t, 1, "--listen", "tls://127.0.0.1:0",
		"--cert", certs.ServerCert, "--key", certs.ServerKey, "--ca", certs.CACert)
	addr := s.addrs[0]
	if !strings.HasPrefix(addr, "tls://127.0.0.1:") {
		t.Fatalf("listening on %q, want a tls:// address", addr)
	}
	ctx := testContext(t)
	client := []string{"--ca", certs.CACert, "--cert", certs.ClientCert, "--key", certs.ClientKey}

	args := append(append([]string{"call"}, client...), addr, "add", "2", "3")
	if code, stdout, stderr := runArbor(ctx, args...); code != exitOK || stdout != "5\n" {
		t.Errorf("mutual TLS call = %d, %q, %q; want 5", code, stdout, stderr)
	}
	args = append(append([]string{"catalog"}, client...), addr)
	if code, stdout, stderr := runArbor(ctx, args...); code != exitOK || !strings.Contains(stdout, "\nadd(int, int) int\n") {
		t.Errorf("mutual TLS catalog = %d, %q, %q; want the catalog", code, stdout, stderr)
	}
	localhost := "tls://localhost:" + addr[strings.LastIndex(addr, ":")+1:]
	args = append(append([]string{"call", "--server-name", "localhost"}, client...), localhost, "add", "2", "3")
	if code, stdout, stderr := runArbor(ctx, args...); code != exitOK || stdout != "5\n" {
		t.Errorf("call with --server-name = %d, %q, %q; want 5", code, stdout, stderr)
	}

	// Refused: no client certificate, or a server nobody vouches for.
	for _, args := range [][]string{
		{"call", "--ca", certs.CACert, addr, "add", "2", "3"},
		{"call", "--cert", certs.ClientCert, "--key", certs.ClientKey, addr, "add", "2", "3"},
		{"call", "--server-name", "elsewhere.example", "--ca", certs.CACert, "--cert", certs.ClientCert, "--key", certs.ClientKey, addr, "add", "2", "3"},
	} {
		if code, stdout, stderr := runArbor(ctx, args...); code != exitFail || stdout != "" || !strings.HasPrefix(stderr, "error: ") {
			t.Errorf("arbor %q = %d, %q, %q; want an error", args, code, stdout, stderr)
		} else {
			t.Logf("refused as wanted: %s", strings.TrimSpace(stderr))
		}
	}
	if code := s.stop(t); code != exitOK {
		t.Errorf("serve exited %d, want 0", code)
	}
}

func TestCallStreams(t *testing.T) {
	s := startServe(t, 1, "--listen", "tcp://127.0.0.1:0")
	addr := s.addrs[0]
	ctx := testContext(t)
	if code, stdout, stderr := runArbor(ctx, "call", addr, "count", "3"); code != exitOK || stdout != "1\n2\n3\n" {
		t.Errorf("count 3 = %d, %q, %q", code, stdout, stderr)
	}
	stdin = strings.NewReader("1 2\n3\n4\n")
	code, stdout, stderr := runArbor(ctx, "call", addr, "sum")
	if code != exitOK || stdout != "10\n" {
		t.Errorf("sum = %d, %q, %q", code, stdout, stderr)
	}
	stdin = strings.NewReader(`"hi" "there"`)
	code, stdout, stderr = runArbor(ctx, "call", addr, "chat")
	stdin = os.Stdin
	if code != exitOK || stdout != "\"HI\"\n\"THERE\"\n" {
		t.Errorf("chat = %d, %q, %q", code, stdout, stderr)
	}
	if code, _, stderr := runArbor(ctx, "call", addr, "count", "-1"); code != exitFail || !strings.HasPrefix(stderr, "error: InvalidArgument: count: negative") {
		t.Errorf("count -1 = %d, %q", code, stderr)
	}
	if code, stdout, _ := runArbor(ctx, "catalog", addr); code != exitOK || !strings.Contains(stdout, "count(int) stream int\n") || !strings.Contains(stdout, "chat(stream string) stream string\n") {
		t.Errorf("catalog = %d, %q", code, stdout)
	}
}

// call --cluster's strategy flags refuse what they would get wrong: the
// key strategy with no key (every call to one member), a key with another
// strategy (the key silently won); and all of them need --cluster.
func TestCallClusterStrategyUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"call", "--cluster", "tcp://127.0.0.1:1", "--strategy", "key", "add", "1", "2"}, "--strategy key needs --hash-key"},
		{[]string{"call", "--cluster", "tcp://127.0.0.1:1", "--strategy", "random", "--hash-key", "k", "add", "1", "2"}, "cannot go with --strategy random"},
		{[]string{"call", "--hash-key", "k", "tcp://127.0.0.1:1", "add"}, "need --cluster"},
	} {
		code, _, stderr := runArbor(testContext(t), tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("arbor %s = %d, %q; want usage error containing %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}
