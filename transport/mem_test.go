package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// memPair returns the two ends of a fresh mem: connection.
func memPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ctx := testContext(t)
	cfg := &Config{Mem: NewMemNetwork()}
	ln, err := Listen(ctx, "mem:pair", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = Dial(ctx, "mem:pair", cfg)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

func TestMemRoundTrip(t *testing.T) {
	ctx := testContext(t)
	cfg := &Config{Mem: NewMemNetwork()}
	ln, err := Listen(ctx, "mem://svc", cfg)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ln)
	if ln.URL() != "mem:svc" || ln.Addr().Network() != "mem" || ln.Addr().String() != "svc" {
		t.Errorf("URL %q, Addr %s %q", ln.URL(), ln.Addr().Network(), ln.Addr())
	}
	c, err := Dial(ctx, ln.URL(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.LocalAddr().Network() != "mem" || c.RemoteAddr().Network() != "mem" || c.RemoteAddr().String() != "svc" {
		t.Errorf("LocalAddr %v, RemoteAddr %v", c.LocalAddr(), c.RemoteAddr())
	}
	roundTrip(t, c, "hello")
	roundTrip(t, c, strings.Repeat("x", 3*memBufSize/2))
}

// A transfer larger than the buffers in both directions at once.
func TestMemLargeDuplex(t *testing.T) {
	client, server := memPair(t)
	go func() { _, _ = io.Copy(server, server) }()
	data := make([]byte, 5*memBufSize+12345)
	_, _ = rand.Read(data)
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(data)
		wrote <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data corrupted")
	}
}

func TestMemListenErrors(t *testing.T) {
	ctx := testContext(t)
	cfg := &Config{Mem: NewMemNetwork()}
	ln, err := Listen(ctx, "mem:a", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(ctx, "mem:a", cfg); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen(mem:a): %v, want name in use", err)
	}
	// Another network has its own names.
	other, err := Listen(ctx, "mem:a", &Config{Mem: NewMemNetwork()})
	if err != nil {
		t.Errorf("Listen in another network: %v", err)
	} else {
		other.Close()
	}
	ln.Close()
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	ln, err = Listen(ctx, "mem:a", cfg)
	if err != nil {
		t.Fatalf("Listen after Close: %v", err)
	}
	ln.Close()

	if _, err := Listen(ctx, "mem:a", nil); !errors.Is(err, ErrConfig) {
		t.Errorf("Listen without a MemNetwork: %v, want ErrConfig", err)
	}
	if _, err := Dial(ctx, "mem:a", &Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("Dial without a MemNetwork: %v, want ErrConfig", err)
	}
}

func TestMemDialNoListener(t *testing.T) {
	ctx := testContext(t)
	_, err := Dial(ctx, "mem:nobody", &Config{Mem: NewMemNetwork()})
	if err == nil || !strings.Contains(err.Error(), "no listener") {
		t.Errorf("Dial: %v, want no listener", err)
	}
}

func TestMemDialWaitsForAccept(t *testing.T) {
	ctx := testContext(t)
	cfg := &Config{Mem: NewMemNetwork()}
	ln, err := Listen(ctx, "mem:slow", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// Nobody accepts: the context ends the dial.
	dialCtx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() {
		_, err := Dial(dialCtx, "mem:slow", cfg)
		result <- err
	}()
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with canceled context: %v", err)
	}

	// Closing the listener ends both a pending dial and Accept.
	go func() {
		_, err := Dial(ctx, "mem:slow", cfg)
		result <- err
	}()
	accepted := make(chan error, 1)
	ln2, err := Listen(ctx, "mem:idle", cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, err := ln2.Accept()
		accepted <- err
	}()
	ln.Close()
	ln2.Close()
	if err := <-result; err == nil {
		t.Error("Dial succeeded to a closed listener")
	}
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestMemReadDeadline(t *testing.T) {
	client, server := memPair(t)

	if err := client.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read past deadline: %v, want a timeout", err)
	}

	// A deadline moved into the past wakes a blocked Read.
	if err := client.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	result := make(chan error, 1)
	go func() {
		_, err := client.Read(make([]byte, 1))
		result <- err
	}()
	if err := client.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-result; !isTimeout(err) {
		t.Fatalf("Read after deadline moved to the past: %v, want a timeout", err)
	}

	// Clearing the deadline makes reads work again.
	if err := client.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := client.Read(buf); err != nil || buf[0] != 'z' {
		t.Fatalf("Read after clearing the deadline: %q, %v", buf, err)
	}
}

// A stalled reader makes the writer block once the buffer is full.
func TestMemBoundedBuffer(t *testing.T) {
	client, server := memPair(t)
	data := make([]byte, 3*memBufSize)
	if err := client.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := client.Write(data)
	if !isTimeout(err) {
		t.Fatalf("Write to a stalled reader: %v, want a timeout", err)
	}
	if n != memBufSize {
		t.Fatalf("Write buffered %d bytes, want exactly %d", n, memBufSize)
	}

	// Once the reader drains, the rest goes through.
	if err := client.SetWriteDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(data[n:])
		wrote <- err
	}()
	if _, err := io.ReadFull(server, make([]byte, len(data))); err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

func TestMemClose(t *testing.T) {
	client, server := memPair(t)

	// A Read blocked on the peer is woken by the peer's Close with io.EOF,
	// after the data written before it.
	read := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(server) // stops at io.EOF
		read <- data
	}()
	if _, err := client.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-read; string(got) != "last words" {
		t.Errorf("peer read %q before EOF", got)
	}
	if _, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read after drain: %v, want io.EOF", err)
	}
	if _, err := server.Write([]byte("anyone?")); err == nil {
		t.Error("Write to a closed peer succeeded")
	}

	// The closed end itself.
	if _, err := client.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := client.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if err := client.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetDeadline after Close: %v, want net.ErrClosed", err)
	}
}

func TestMemCloseUnblocks(t *testing.T) {
	client, server := memPair(t)

	// Close wakes this end's own blocked Read, and a Write blocked on a
	// full buffer.
	readErr := make(chan error, 1)
	go func() {
		_, err := client.Read(make([]byte, 1))
		readErr <- err
	}()
	writeErr := make(chan error, 1)
	go func() {
		_, err := server.Write(make([]byte, 2*memBufSize))
		writeErr <- err
	}()
	client.Close()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked Read after Close: %v, want net.ErrClosed", err)
	}
	if err := <-writeErr; err == nil {
		t.Error("Write blocked on a peer that closed succeeded")
	}
}

func TestMemCloseWrite(t *testing.T) {
	client, server := memPair(t)
	cw, ok := client.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("mem conn has no CloseWrite")
	}
	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("more")); err == nil {
		t.Error("Write after CloseWrite succeeded")
	}
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v", got, err)
	}
	// The other direction still works.
	if _, err := server.Write([]byte("response")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "response" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}
