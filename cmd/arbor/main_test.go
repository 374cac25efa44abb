package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// serve's default disk cache lives under the user cache directory:
	// point it at a scratch directory so tests never touch the real one.
	dir, err := os.MkdirTemp("", "arbor-cmd-test")
	if err != nil {
		panic(err)
	}
	// The go command (tests build the arbor binary) keeps the real build
	// cache: an empty one rebuilds every dependency, for minutes.
	if os.Getenv("GOCACHE") == "" {
		if c, err := os.UserCacheDir(); err == nil {
			os.Setenv("GOCACHE", filepath.Join(c, "go-build"))
		}
	}
	os.Setenv("XDG_CACHE_HOME", dir)
	code := func() int { defer os.RemoveAll(dir); return m.Run() }()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testTimeout bounds every test so a bug fails it instead of hanging it.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runArbor runs the command line in process and returns its exit status,
// stdout and stderr.
func runArbor(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// server is an in-process `arbor serve`.
type server struct {
	addrs  []string    // from the "listening on" lines
	stderr *syncBuffer // its logs
	cancel context.CancelFunc
	done   chan int // its exit status
}

// startServe runs `arbor serve args...` in a goroutine and waits for its n
// "listening on" lines. Cleanup stops it, if the test has not.
func startServe(t *testing.T, n int, args ...string) *server {
	t.Helper()
	var addrs []string
	s := serveUntil(t, args, func(line string) bool {
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			t.Fatalf("serve printed %q, want a \"listening on ADDR\" line", line)
		}
		addrs = append(addrs, addr)
		return len(addrs) == n
	})
	s.addrs = addrs
	return s
}

// serveUntil runs `arbor serve args...` in a goroutine and reads what it
// prints, a line at a time, until seen (the test's reading of them) says
// it has what it waits for; the rest is discarded, so serve never
// blocks. Cleanup stops it, if the test has not.
func serveUntil(t *testing.T, args []string, seen func(line string) bool) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(testContext(t))
	pr, pw := io.Pipe()
	s := &server{stderr: new(syncBuffer), cancel: cancel, done: make(chan int, 1)}
	go func() {
		code := run(ctx, append([]string{"serve"}, args...), pw, s.stderr)
		pw.Close()
		s.done <- code
	}()
	t.Cleanup(func() {
		cancel()
		pr.Close()
		select {
		case <-s.done:
		case <-time.After(testTimeout):
			t.Error("serve did not stop")
		}
	})
	sc := bufio.NewScanner(pr)
	done := false
	for !done && sc.Scan() {
		done = seen(sc.Text())
	}
	if !done {
		cancel()
		t.Fatalf("serve stopped printing before the lines this test waits for; stderr:\n%s", s.stderr)
	}
	go io.Copy(io.Discard, pr) // nothing more is expected; never block serve
	return s
}

// stop cancels the serve and returns its exit status.
func (s *server) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code // for Cleanup
		return code
	case <-time.After(testTimeout):
		t.Fatal("serve did not stop")
		return -1
	}
}

func TestUsage(t *testing.T) {
	ctx := testContext(t)
	for _, args := range [][]string{nil, {"help"}, {"-h"}, {"--help"}, {"frob"}} {
		code, stdout, stderr := runArbor(ctx, args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "Usage: arbor COMMAND") {
			t.Errorf("arbor %q = %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, stdout, stderr)
		}
	}
	if _, _, stderr := runArbor(ctx, "frob"); !strings.HasPrefix(stderr, `arbor: unknown command "frob"`) {
		t.Errorf("arbor frob: stderr %q does not name the command", stderr)
	}
	for _, cmd := range []string{"serve", "call", "catalog", "version"} {
		for _, args := range [][]string{{"help", cmd}, {cmd, "-h"}} {
			code, _, stderr := runArbor(ctx, args...)
			if code != exitUsage || !strings.HasPrefix(stderr, "Usage: arbor "+cmd) {
				t.Errorf("arbor %q = %d, stderr %q; want 2 and the %s usage", args, code, stderr, cmd)
			}
		}
	}
	for _, args := range [][]string{
		{"call"},
		{"call", "tcp://127.0.0.1:1"},
		{"call", "--frob", "tcp://127.0.0.1:1", "add"},
		{"catalog"},
		{"catalog", "a", "b"},
		{"version", "extra"},
		{"serve", "extra"},
		{"serve", "--log-level", "loud"},
		{"serve", "--listen", "nonsense"},
		{"serve", "--listen", "mem:x"},
		{"serve", "--listen", "tls://127.0.0.1:0"},
		// A client certificate without its key, or the reverse, is
		// refused before anything is dialed.
		{"call", "--cert", "c.pem", "tls://127.0.0.1:1", "add"},
		{"catalog", "--key", "k.pem", "tls://127.0.0.1:1"},
		{"bench", "--cert", "c.pem", "tls://127.0.0.1:1", "add"},
		{"status", "--key", "k.pem", "tls://127.0.0.1:1"},
		{"submit", "--cert", "c.pem", "tls://127.0.0.1:1", "-"},
		{"members", "--cert", "c.pem", "tls://127.0.0.1:1"},
	} {
		if code, stdout, stderr := runArbor(ctx, args...); code != exitUsage || stdout != "" || stderr == "" {
			t.Errorf("arbor %q = %d, stdout %q, stderr %q; want a usage error", args, code, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runArbor(testContext(t), "version")
	want := "arbor " + moduleVersion() + " (go " + goVersion() + ")\n"
	if code != exitOK || stdout != want || stderr != "" {
		t.Fatalf("arbor version = %d, %q, %q; want 0, %q", code, stdout, stderr, want)
	}
	if strings.HasPrefix(goVersion(), "go") {
		t.Errorf("goVersion() = %q keeps its go prefix", goVersion())
	}
}
