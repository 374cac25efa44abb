package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Certificates written by `arbor certs` work for mutual TLS with serve and
// call, over tls:// and quic://; a client without one is refused as
// Unauthenticated.
func TestCerts(t *testing.T) {
	dir := t.TempDir()
	ctx := testContext(t)
	code, stdout, stderr := runArbor(ctx, "certs", "--dir", dir, "--host", "127.0.0.1", "--host", "localhost")
	if code != exitOK || strings.Count(stdout, "wrote ") != 6 {
		t.Fatalf("certs = %d, %q, %q", code, stdout, stderr)
	}
	if code, _, stderr := runArbor(ctx, "certs", "--dir", dir); code != exitFail || !strings.Contains(stderr, "exists") {
		t.Fatalf("second certs without --force = %d, %q", code, stderr)
	}
	if code, _, _ := runArbor(ctx, "certs"); code != exitUsage {
		t.Fatalf("certs without --dir = %d", code)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	s := startServe(t, 2, "--listen", "tls://127.0.0.1:0", "--listen", "quic://127.0.0.1:0",
		"--cert", f("server.pem"), "--key", f("server-key.pem"), "--ca", f("ca.pem"))
	for _, addr := range s.addrs {
		client := []string{"call", "--ca", f("ca.pem"), "--cert", f("client.pem"), "--key", f("client-key.pem"), addr, "add", "2", "3"}
		if code, stdout, stderr := runArbor(ctx, client...); code != exitOK || stdout != "5\n" {
			t.Errorf("%s: call with the client certificate = %d, %q, %q", addr, code, stdout, stderr)
		}
		code, _, stderr := runArbor(ctx, "call", "--ca", f("ca.pem"), addr, "add", "2", "3")
		if code != exitFail || !strings.HasPrefix(stderr, "error: Unauthenticated: ") {
			t.Errorf("%s: call without a client certificate = %d, %q; want Unauthenticated", addr, code, stderr)
		}
		// A server the call cannot verify: the error names the flags that fix it.
		code, _, stderr = runArbor(ctx, "call", addr, "add", "2", "3")
		if code != exitFail || !strings.Contains(stderr, "--ca FILE") || strings.Contains(stderr, "Config.") {
			t.Errorf("%s: call without --ca = %d, %q; want the hint to name --ca", addr, code, stderr)
		}
		code, _, stderr = runArbor(ctx, "call", "--ca", f("ca.pem"), "--server-name", "nope.example", addr, "add", "2", "3")
		if code != exitFail || !strings.Contains(stderr, "--server-name") || strings.Contains(stderr, "Config.") {
			t.Errorf("%s: call with a wrong --server-name = %d, %q; want the hint to name --server-name", addr, code, stderr)
		}
	}
}
