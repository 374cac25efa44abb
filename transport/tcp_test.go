package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func TestTCPRoundTrip(t *testing.T) {
	ctx := testContext(t)
	ln, err := Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, ln)

	url := ln.URL()
	a, err := ParseAddr(url)
	if err != nil {
		t.Fatalf("URL %q does not parse: %v", url, err)
	}
	_, port, _ := net.SplitHostPort(a.Host)
	if a.Scheme != SchemeTCP || !strings.HasPrefix(url, "tcp://127.0.0.1:") || port == "0" {
		t.Fatalf("URL = %q, want tcp://127.0.0.1:<real port>", url)
	}
	if got := ln.Addr().String(); "tcp://"+got != url {
		t.Errorf("Addr = %q, URL = %q", got, url)
	}

	// Both the URL and the bare host:port dial.
	for _, addr := range []string{url, a.Host} {
		c, err := Dial(ctx, addr, nil)
		if err != nil {
			t.Fatalf("Dial(%q): %v", addr, err)
		}
		roundTrip(t, c, "hello over "+addr)
		c.Close()
	}
}

func TestTCPDialClosedPort(t *testing.T) {
	ctx := testContext(t)
	ln, err := Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	url := ln.URL()
	ln.Close()
	c, err := Dial(ctx, url, nil)
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%q) to a closed port succeeded", url)
	}
	if errors.Is(err, ErrTLS) || errors.Is(err, ErrConfig) {
		t.Errorf("network error %v matches ErrTLS or ErrConfig", err)
	}
}

func TestDialCanceledContext(t *testing.T) {
	ctx := testContext(t)
	mem := NewMemNetwork()
	tcp, err := Listen(ctx, "tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	sock, err := Listen(ctx, "unix:"+t.TempDir()+"/s", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	m, err := Listen(ctx, "mem:x", &Config{Mem: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for _, addr := range []string{tcp.URL(), "tls://" + tcp.Addr().String(), sock.URL(), m.URL()} {
		c, err := Dial(canceled, addr, &Config{Mem: mem})
		if err == nil {
			c.Close()
			t.Errorf("Dial(%q) with a canceled context succeeded", addr)
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial(%q): error %v does not match context.Canceled", addr, err)
		}
	}
}

func TestListenBadAddress(t *testing.T) {
	ctx := testContext(t)
	if _, err := Listen(ctx, "http://h:1", nil); !errors.Is(err, ErrConfig) {
		t.Errorf("Listen(http): %v, want ErrConfig", err)
	}
	if _, err := Dial(ctx, "nope", nil); !errors.Is(err, ErrConfig) {
		t.Errorf("Dial(nope): %v, want ErrConfig", err)
	}
}

// *:PORT binds every local interface: a client reaches it over IPv4 and,
// where the machine has it, IPv6 loopback.
func TestListenEveryInterface(t *testing.T) {
	ctx := context.Background()
	for _, addr := range []string{"*:0", "tcp://*:0"} {
		l, err := Listen(ctx, addr, nil)
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("k"))
				c.Close()
			}
		}()
		hosts := []string{"127.0.0.1"}
		if probe, err := net.Listen("tcp6", "[::1]:0"); err == nil {
			probe.Close()
			hosts = append(hosts, "[::1]")
		} else {
			t.Logf("no IPv6 loopback here (%v): IPv4 only", err)
		}
		for _, h := range hosts {
			c, err := Dial(ctx, "tcp://"+h+":"+port, nil)
			if err != nil {
				t.Fatalf("%s via %s: %v", addr, h, err)
			}
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil || b[0] != 'k' {
				t.Fatalf("%s via %s: read %q %v", addr, h, b, err)
			}
			c.Close()
		}
		l.Close()
	}
}
