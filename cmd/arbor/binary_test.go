package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBinary builds the arbor command and drives it as a user would:
// serve, call, catalog, then SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	// Building may take minutes on a cold cache and a busy machine; only
	// what follows runs under the usual test timeout.
	bctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "arbor")
	build := exec.CommandContext(bctx, goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := testContext(t)

	// serve, reading its stdout through a pipe of our own so that Wait
	// does not race our reads.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	var serveErr bytes.Buffer
	srv := exec.CommandContext(ctx, bin, "serve", "--listen", "tcp://127.0.0.1:0")
	srv.Stdout, srv.Stderr = pw, &serveErr
	if err := srv.Start(); err != nil {
		pw.Close()
		t.Fatal(err)
	}
	pw.Close()
	waited := false
	defer func() {
		if !waited {
			srv.Process.Kill()
			srv.Wait()
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "listening on ")
	if err != nil || !ok {
		t.Fatalf("serve printed %q (%v), want \"listening on ADDR\"", line, err)
	}

	arbor := func(args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("arbor %q: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}
	if code, stdout, stderr := arbor("call", addr, "add", "2", "3"); code != 0 || stdout != "5\n" || stderr != "" {
		t.Errorf("arbor call add 2 3 = %d, %q, %q; want 0, \"5\\n\"", code, stdout, stderr)
	}
	if code, stdout, stderr := arbor("call", addr, "nope"); code != 1 || stdout != "" || stderr != "error: Unimplemented: unknown function \"nope\"\n" {
		t.Errorf("arbor call nope = %d, %q, %q; want 1 and an Unimplemented error", code, stdout, stderr)
	}
	if code, stdout, stderr := arbor("call", addr, "add", "1", `"x"`); code != 1 || stdout != "" ||
		!strings.HasPrefix(stderr, "error: InvalidArgument: add: argument 1 (int)") {
		t.Errorf(`arbor call add 1 "x" = %d, %q, %q; want 1 and InvalidArgument naming argument 1`, code, stdout, stderr)
	}
	if code, stdout, stderr := arbor("catalog", addr); code != 0 || !strings.Contains(stdout, "add(int, int) int\n") {
		t.Errorf("arbor catalog = %d, %q, %q; want 0 and add listed", code, stdout, stderr)
	}
	if code, stdout, _ := arbor("version"); code != 0 || !strings.HasPrefix(stdout, "arbor ") {
		t.Errorf("arbor version = %d, %q", code, stdout)
	}
	if code, _, stderr := arbor(); code != 2 || !strings.Contains(stderr, "Usage: arbor") {
		t.Errorf("arbor = %d, %q; want 2 and the usage", code, stderr)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = srv.Wait()
	waited = true
	if err != nil {
		t.Errorf("serve after SIGTERM: %v; want exit 0; stderr:\n%s", err, &serveErr)
	}
	if !strings.Contains(serveErr.String(), "msg=stopped") {
		t.Errorf("serve logged:\n%s\nwant a stopped message", &serveErr)
	}
}
