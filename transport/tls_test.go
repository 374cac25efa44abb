package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// listenTLSEcho starts an echo server on tls://127.0.0.1:0 with cfg.
func listenTLSEcho(t *testing.T, cfg *Config) (Listener, <-chan error) {
	t.Helper()
	ln, err := Listen(testContext(t), "tls://127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ln, echo(t, ln)
}

func TestTLSRoundTrip(t *testing.T) {
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln, _ := listenTLSEcho(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if !strings.HasPrefix(ln.URL(), "tls://127.0.0.1:") || strings.HasSuffix(ln.URL(), ":0") {
		t.Fatalf("URL = %q, want tls://127.0.0.1:<real port>", ln.URL())
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	// The IP SAN verifies the URL as is; the DNS SAN verifies localhost.
	for _, addr := range []string{ln.URL(), "tls://localhost:" + port} {
		c, err := Dial(ctx, addr, &Config{CAFile: certs.CACert})
		if err != nil {
			t.Fatalf("Dial(%q): %v", addr, err)
		}
		tc, ok := c.(*tls.Conn)
		if !ok {
			t.Fatalf("Dial returned %T, want *tls.Conn", c)
		}
		if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
			t.Errorf("version %s, want TLS 1.3", tls.VersionName(v))
		}
		if !tc.ConnectionState().HandshakeComplete {
			t.Error("Dial returned before the handshake completed")
		}
		roundTrip(t, c, "hello over "+addr)
		c.Close()
	}
}

func TestTLSVerifyFailures(t *testing.T) {
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln, _ := listenTLSEcho(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})

	// Wrong name.
	_, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert, ServerName: "example.com"})
	var hostErr x509.HostnameError
	if !errors.Is(err, ErrTLS) || !errors.As(err, &hostErr) {
		t.Errorf("Dial with a wrong ServerName: %v, want ErrTLS wrapping x509.HostnameError", err)
	}
	if errors.Is(err, ErrConfig) {
		t.Errorf("handshake failure %v matches ErrConfig", err)
	}

	// Unknown authority (system roots).
	_, err = Dial(ctx, ln.URL(), nil)
	var authErr x509.UnknownAuthorityError
	if !errors.Is(err, ErrTLS) || !errors.As(err, &authErr) {
		t.Errorf("Dial with system roots: %v, want ErrTLS wrapping x509.UnknownAuthorityError", err)
	}
}

func TestTLSRefusesOldVersions(t *testing.T) {
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln, handshakes := listenTLSEcho(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})

	// A TLS 1.2 client is refused by the server.
	d := tls.Dialer{Config: &tls.Config{MaxVersion: tls.VersionTLS12, InsecureSkipVerify: true}}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("TLS 1.2 handshake succeeded")
	}
	if err := <-handshakes; err == nil {
		t.Error("server completed a TLS 1.2 handshake")
	}

	// A configuration capped below TLS 1.3 is refused before dialing.
	_, err = Dial(ctx, ln.URL(), &Config{TLS: &tls.Config{MaxVersion: tls.VersionTLS12}})
	if !errors.Is(err, ErrTLS) || !errors.Is(err, ErrConfig) {
		t.Errorf("Dial with MaxVersion 1.2: %v, want ErrTLS and ErrConfig", err)
	}
	_, err = Listen(ctx, "tls://127.0.0.1:0", &Config{TLS: &tls.Config{MaxVersion: tls.VersionTLS12}})
	if !errors.Is(err, ErrConfig) {
		t.Errorf("Listen with MaxVersion 1.2: %v, want ErrConfig", err)
	}
}

func TestTLSConfigTLS(t *testing.T) {
	ctx := testContext(t)
	ca := testcerts.NewCA(t, "CA")
	server := ca.IssueTLS(t, "server", testcerts.Server)
	serverCfg := &tls.Config{Certificates: []tls.Certificate{server}, MinVersion: tls.VersionTLS12}
	ln, _ := listenTLSEcho(t, &Config{TLS: serverCfg})
	if serverCfg.MinVersion != tls.VersionTLS12 {
		t.Error("Listen modified Config.TLS")
	}
	c, err := Dial(ctx, ln.URL(), &Config{TLS: &tls.Config{RootCAs: ca.Pool()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %s, want TLS 1.3", tls.VersionName(v))
	}
	roundTrip(t, c, "configured")
}

// expectRejected checks that a client the server must refuse fails either
// at Dial or at its first read.
func expectRejected(t *testing.T, c net.Conn, err error, serverErr <-chan error) {
	t.Helper()
	if err == nil {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		_, _ = io.WriteString(c, "let me in")
		_, err = c.Read(make([]byte, 16))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("read timed out instead of failing: %v", err)
		}
	}
	if err == nil {
		t.Fatal("rejected client could read")
	}
	if serr := <-serverErr; serr == nil {
		t.Error("server handshake succeeded")
	}
}

func TestMutualTLS(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	certs := testcerts.Write(t, dir)
	ln, handshakes := listenTLSEcho(t, &Config{
		CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CACert,
	})

	t.Run("good client", func(t *testing.T) {
		c, err := Dial(ctx, ln.URL(), &Config{
			CAFile: certs.CACert, CertFile: certs.ClientCert, KeyFile: certs.ClientKey,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		roundTrip(t, c, "mutual")
		if err := <-handshakes; err != nil {
			t.Errorf("server handshake: %v", err)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert})
		expectRejected(t, c, err, handshakes)
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		other := testcerts.NewCA(t, "Other CA")
		certFile, keyFile := other.Issue(t, dir, "intruder", testcerts.Client)
		c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert, CertFile: certFile, KeyFile: keyFile})
		expectRejected(t, c, err, handshakes)
	})
}

// A client that never completes its handshake does not hold up Accept.
func TestTLSAcceptDoesNotHandshake(t *testing.T) {
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln, err := Listen(ctx, "tls://127.0.0.1:0", &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	first, err := ln.Accept() // would block forever if Accept handshook
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, ok := first.(*tls.Conn); !ok {
		t.Fatalf("Accept returned %T, want *tls.Conn", first)
	}

	dialed := make(chan error, 1)
	go func() {
		c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert})
		if err == nil {
			roundTripErr := func() error {
				defer c.Close()
				if _, err := io.WriteString(c, "ping"); err != nil {
					return err
				}
				_, err := io.ReadFull(c, make([]byte, 4))
				return err
			}
			err = roundTripErr()
		}
		dialed <- err
	}()
	second, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(second, buf); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if _, err := second.Write(buf); err != nil {
		t.Fatalf("server write: %v", err)
	}
	if err := <-dialed; err != nil {
		t.Fatalf("client: %v", err)
	}
}

// Canceling the context while the server sits on the handshake stops Dial.
func TestTLSDialCanceledDuringHandshake(t *testing.T) {
	ctx := testContext(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		// Read the start of the ClientHello, answer nothing, cancel.
		if _, err := c.Read(make([]byte, 1)); err == nil {
			cancel()
		}
		_, _ = io.Copy(io.Discard, c) // until the client gives up
	}()
	c, err := Dial(dialCtx, "tls://"+ln.Addr().String(), &Config{ServerName: "localhost"})
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded against a silent server")
	}
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrTLS) {
		t.Errorf("Dial: %v, want ErrTLS wrapping context.Canceled", err)
	}
	<-serverDone
}

func TestTLSConfigErrors(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	certs := testcerts.Write(t, dir)
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}

	listens := []struct {
		name string
		cfg  *Config
		is   error // an extra error the result must match
	}{
		{"nil config", nil, nil},
		{"cert without key", &Config{CertFile: certs.ServerCert}, nil},
		{"missing cert file", &Config{CertFile: missing, KeyFile: certs.ServerKey}, fs.ErrNotExist},
		{"garbage key", &Config{CertFile: certs.ServerCert, KeyFile: garbage}, nil},
		{"missing CA file", &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: missing}, fs.ErrNotExist},
		{"garbage CA file", &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: garbage}, nil},
		{"TLS without certificate", &Config{TLS: &tls.Config{}}, nil},
	}
	for _, tt := range listens {
		ln, err := Listen(ctx, "tls://127.0.0.1:0", tt.cfg)
		if err == nil {
			ln.Close()
			t.Errorf("Listen with %s succeeded", tt.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !errors.Is(err, ErrTLS) {
			t.Errorf("Listen with %s: %v, want ErrConfig and ErrTLS", tt.name, err)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Listen with %s: %v, want it to wrap %v", tt.name, err, tt.is)
		}
	}

	dials := []struct {
		name string
		cfg  *Config
	}{
		{"key without cert", &Config{KeyFile: certs.ClientKey}},
		{"missing CA file", &Config{CAFile: missing}},
		{"garbage CA file", &Config{CAFile: garbage}},
		{"garbage client key", &Config{CertFile: certs.ClientCert, KeyFile: garbage}},
	}
	for _, tt := range dials {
		// Port 1 is never dialed: the configuration fails first.
		c, err := Dial(ctx, "tls://127.0.0.1:1", tt.cfg)
		if err == nil {
			c.Close()
			t.Errorf("Dial with %s succeeded", tt.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !errors.Is(err, ErrTLS) {
			t.Errorf("Dial with %s: %v, want ErrConfig and ErrTLS", tt.name, err)
		}
	}
}

// A Config.TLS whose GetConfigForClient hands out its own configuration
// (certificate rotation, SNI) is still TLS 1.3 only: the configuration
// it returns is what crypto/tls handshakes with.
func TestTLSGetConfigForClientStillTLS13(t *testing.T) {
	ctx := testContext(t)
	ca := testcerts.NewCA(t, "CA")
	server := ca.IssueTLS(t, "server", testcerts.Server)
	ln, handshakes := listenTLSEcho(t, &Config{TLS: &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return &tls.Config{Certificates: []tls.Certificate{server}}, nil
		},
	}})
	d := tls.Dialer{Config: &tls.Config{MaxVersion: tls.VersionTLS12, RootCAs: ca.Pool(), ServerName: "127.0.0.1"}}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("TLS 1.2 handshake succeeded")
	}
	if err := <-handshakes; err == nil {
		t.Error("server completed a TLS 1.2 handshake")
	}
	c, err = Dial(ctx, ln.URL(), &Config{TLS: &tls.Config{RootCAs: ca.Pool()}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "rotated")
}
