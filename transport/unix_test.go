package transport

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestUnixRoundTrip(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "arbor.sock")
	ln, err := Listen(ctx, "unix:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ln)
	if want := "unix:" + path; ln.URL() != want {
		t.Errorf("URL = %q, want %q", ln.URL(), want)
	}
	for _, addr := range []string{ln.URL(), "unix://" + path} {
		c, err := Dial(ctx, addr, nil)
		if err != nil {
			t.Fatalf("Dial(%q): %v", addr, err)
		}
		roundTrip(t, c, "hello over "+addr)
		c.Close()
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
}

func TestUnixRemovesStaleSocket(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "stale.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close() // as if the process had died
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}

	ln, err := Listen(ctx, "unix:"+path, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	echo(t, ln)
	c, err := Dial(ctx, ln.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "fresh")
}

func TestUnixKeepsLiveSocket(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "live.sock")
	ln, err := Listen(ctx, "unix:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ln)
	if ln2, err := Listen(ctx, "unix:"+path, nil); err == nil {
		ln2.Close()
		t.Fatal("second Listen on a live socket succeeded")
	}
	c, err := Dial(ctx, ln.URL(), nil)
	if err != nil {
		t.Fatalf("first listener lost its socket: %v", err)
	}
	defer c.Close()
	roundTrip(t, c, "still here")
}

func TestUnixKeepsRegularFile(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ln, err := Listen(ctx, "unix:"+path, nil); err == nil {
		ln.Close()
		t.Fatal("Listen over a regular file succeeded")
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "precious" {
		t.Errorf("regular file after Listen: %q, %v", data, err)
	}
}

// unix-abstract:NAME is an abstract socket, the same one unix:@NAME names.
func TestUnixAbstractScheme(t *testing.T) {
	ctx := context.Background()
	name := "arbor-test-" + strconv.Itoa(os.Getpid())
	l, err := Listen(ctx, "unix-abstract:"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("a"))
			c.Close()
		}
	}()
	c, err := Dial(ctx, "unix:@"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'a' {
		t.Fatalf("read %q %v", b, err)
	}
	if _, err := os.Stat("@" + name); err == nil {
		t.Fatal("an abstract socket left a file")
	}
}

// A relative socket path is bound where it pointed when Listen ran:
// Close removes that file, not one of the same name in the directory the
// process has moved to since, and the URL names it absolutely.
func TestUnixRelativePath(t *testing.T) {
	ctx := testContext(t)
	first, later := t.TempDir(), t.TempDir()
	t.Chdir(first)
	ln, err := Listen(ctx, "unix:rel.sock", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "unix:" + filepath.Join(first, "rel.sock"); ln.URL() != want {
		t.Errorf("URL = %q, want %q", ln.URL(), want)
	}
	t.Chdir(later)
	if err := os.WriteFile("rel.sock", []byte("not a socket"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(later, "rel.sock")); err != nil {
		t.Errorf("Close removed a file of the same name in the new working directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(first, "rel.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
}
