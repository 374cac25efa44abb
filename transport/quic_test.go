package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor/internal/testcerts"
)

// checkQUICLeaks fails t if goroutines started during the test outlive it.
// Call it first so that its check runs after every other cleanup.
func checkQUICLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// listenQUICTest listens on quic://127.0.0.1:0 with cfg; the test's
// cleanup closes the listener.
func listenQUICTest(t *testing.T, cfg *Config) Listener {
	t.Helper()
	ln, err := Listen(testContext(t), "quic://127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// acceptOne accepts one connection from ln in the background.
func acceptOne(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		ch <- c
	}()
	return ch
}

// quicPair returns the two ends of a quic:// connection: the dialer's and
// the listener's. The test's cleanup closes both and the listener.
func quicPair(t *testing.T) (client, server StreamConn, ln Listener, certs testcerts.Files) {
	t.Helper()
	certs = testcerts.Write(t, t.TempDir())
	ln = listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	accepted := acceptOne(ln)
	c, err := Dial(testContext(t), ln.URL(), &Config{CAFile: certs.CACert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s := <-accepted
	if s == nil {
		t.Fatal("Accept failed")
	}
	t.Cleanup(func() { _ = s.Close() })
	var ok bool
	if client, ok = c.(StreamConn); !ok {
		t.Fatalf("Dial returned %T, not a StreamConn", c)
	}
	if server, ok = s.(StreamConn); !ok {
		t.Fatalf("Accept returned %T, not a StreamConn", s)
	}
	return client, server, ln, certs
}

// readResult is what a Read running in the background returned.
type readResult struct {
	n   int
	err error
}

func readAsync(c net.Conn) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		n, err := c.Read(make([]byte, 64))
		ch <- readResult{n, err}
	}()
	return ch
}

func TestQUICRoundTrip(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln := listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if !strings.HasPrefix(ln.URL(), "quic://127.0.0.1:") || strings.HasSuffix(ln.URL(), ":0") {
		t.Fatalf("URL = %q, want quic://127.0.0.1:<real port>", ln.URL())
	}
	if a, err := ParseAddr(ln.URL()); err != nil || a.Scheme != SchemeQUIC {
		t.Fatalf("ParseAddr(URL) = %+v, %v", a, err)
	}
	if n := ln.Addr().Network(); n != "udp" {
		t.Errorf("Addr().Network() = %q, want udp", n)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, addr := range []string{ln.URL(), "quic://localhost:" + port} {
		accepted := acceptOne(ln)
		c, err := Dial(ctx, addr, &Config{CAFile: certs.CACert})
		if err != nil {
			t.Fatalf("Dial(%q): %v", addr, err)
		}
		s := <-accepted
		if s == nil {
			t.Fatal("Accept failed")
		}
		for _, conn := range []net.Conn{c, s} {
			if _, ok := conn.(StreamConn); !ok {
				t.Fatalf("%T is not a StreamConn", conn)
			}
			cs := conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState()
			if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != QUICALPN {
				t.Errorf("TLS version %s, ALPN %q; want TLS 1.3, %q",
					tls.VersionName(cs.Version), cs.NegotiatedProtocol, QUICALPN)
			}
		}
		// The dialer's socket is bound to the unspecified address: compare
		// its port only.
		_, cport, _ := net.SplitHostPort(c.LocalAddr().String())
		_, sport, _ := net.SplitHostPort(s.RemoteAddr().String())
		if c.RemoteAddr().String() != s.LocalAddr().String() || cport != sport {
			t.Errorf("addresses: dialer %v -> %v, listener %v -> %v",
				c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
		}

		// Both directions on the control stream, preamble stripped.
		msg := "hello over " + addr
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		_ = s.SetDeadline(time.Now().Add(testTimeout))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(s, got); err != nil || string(got) != msg {
			t.Fatalf("listener read %q, %v; want %q", got, err, msg)
		}
		if _, err := s.Write(got); err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		back := make([]byte, len(msg))
		if _, err := io.ReadFull(c, back); err != nil || string(back) != msg {
			t.Fatalf("dialer read %q, %v; want %q", back, err, msg)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := c.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v, want net.ErrClosed", err)
		}
		s.Close()
	}
}

// echoStreams accepts n streams on c and echoes each until its EOF.
func echoStreams(ctx context.Context, t *testing.T, c StreamConn, n int, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range n {
			s, err := c.AcceptStream(ctx)
			if err != nil {
				t.Errorf("AcceptStream: %v", err)
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer s.Close()
				_ = s.SetDeadline(time.Now().Add(testTimeout))
				if _, err := io.Copy(s, s); err != nil {
					t.Errorf("echo: %v", err)
				}
			}()
		}
	}()
}

// testManyStreams opens 100 streams at once on opener, which acceptor
// echoes, and checks that each gets its own data back.
func testManyStreams(t *testing.T, opener, acceptor StreamConn) {
	ctx := testContext(t)
	const n = 100
	var wg sync.WaitGroup
	echoStreams(ctx, t, acceptor, n, &wg)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := opener.OpenStream(ctx)
			if err != nil {
				t.Errorf("OpenStream: %v", err)
				return
			}
			defer s.Close()
			_ = s.SetDeadline(time.Now().Add(testTimeout))
			msg := bytes.Repeat([]byte(fmt.Sprintf("stream %d;", i)), 100*(i%10+1))
			if _, err := s.Write(msg); err != nil {
				t.Errorf("stream %d: write: %v", i, err)
				return
			}
			if err := s.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Errorf("stream %d: CloseWrite: %v", i, err)
				return
			}
			got, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("stream %d: read %d bytes, %v; want its %d bytes back", i, len(got), err, len(msg))
			}
		}()
	}
	wg.Wait()
}

func TestQUICStreams(t *testing.T) {
	checkQUICLeaks(t)
	client, server, _, _ := quicPair(t)
	t.Run("dialer opens", func(t *testing.T) { testManyStreams(t, client, server) })
	t.Run("listener opens", func(t *testing.T) { testManyStreams(t, server, client) })
	// The control stream still works alongside.
	go func() { _, _ = io.CopyN(server, server, 4) }()
	roundTrip(t, client, "ctrl")
}

func TestQUICHalfClose(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	client, server, _, _ := quicPair(t)
	type closeWriter interface{ CloseWrite() error }

	t.Run("stream", func(t *testing.T) {
		s, err := client.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(testTimeout))
		if _, err := io.WriteString(s, "request"); err != nil {
			t.Fatal(err)
		}
		if err := s.(closeWriter).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if err := s.(closeWriter).CloseWrite(); err != nil {
			t.Errorf("second CloseWrite: %v", err)
		}
		if _, err := io.WriteString(s, "more"); err == nil {
			t.Error("Write after CloseWrite succeeded")
		}

		peer, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = peer.SetDeadline(time.Now().Add(testTimeout))
		req, err := io.ReadAll(peer) // ends at the client's CloseWrite
		if err != nil || string(req) != "request" {
			t.Fatalf("listener read %q, %v; want request then EOF", req, err)
		}
		if _, err := io.WriteString(peer, "response"); err != nil {
			t.Fatalf("write after the peer's CloseWrite: %v", err)
		}
		if err := peer.Close(); err != nil {
			t.Fatal(err)
		}
		resp, err := io.ReadAll(s)
		if err != nil || string(resp) != "response" {
			t.Fatalf("dialer read %q, %v; want response then EOF", resp, err)
		}
	})

	t.Run("control stream", func(t *testing.T) {
		_ = client.SetDeadline(time.Now().Add(testTimeout))
		_ = server.SetDeadline(time.Now().Add(testTimeout))
		if _, err := io.WriteString(client, "bye"); err != nil {
			t.Fatal(err)
		}
		if err := client.(closeWriter).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(server)
		if err != nil || string(got) != "bye" {
			t.Fatalf("listener read %q, %v; want bye then EOF", got, err)
		}
		if _, err := io.WriteString(server, "ok"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2)
		if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "ok" {
			t.Fatalf("dialer read %q, %v", buf, err)
		}
		// The connection outlives its control stream's half-close.
		var wg sync.WaitGroup
		echoStreams(ctx, t, server, 1, &wg)
		s, err := client.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, s, "still here")
		s.Close()
		wg.Wait()
	})
}

func TestQUICStreamClose(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	client, server, _, _ := quicPair(t)
	s, err := client.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(s, "x"); err != nil {
		t.Fatal(err)
	}
	peer, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	_ = peer.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.ReadFull(peer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	_ = s.SetDeadline(time.Now().Add(testTimeout))
	pending := readAsync(s)
	time.Sleep(20 * time.Millisecond) // let the Read block
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-pending; !errors.Is(r.err, net.ErrClosed) {
		t.Errorf("pending Read after Close: %v, want net.ErrClosed", r.err)
	}
	if _, err := s.Write([]byte("y")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	// The peer reads EOF (nothing was left to send) and can no longer write.
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read: %v, want EOF", err)
	}
	var werr error
	for range 1000 {
		if _, werr = peer.Write(make([]byte, 1024)); werr != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var se *quic.StreamError
	if !errors.As(werr, &se) || !se.Remote {
		t.Errorf("peer Write to a closed stream: %v, want a remote StreamError", werr)
	}
	// The connection is unaffected.
	go func() { _, _ = io.CopyN(server, server, 2) }()
	roundTrip(t, client, "ok")
}

func TestQUICDeadline(t *testing.T) {
	checkQUICLeaks(t)
	client, server, _, _ := quicPair(t)
	if err := client.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := client.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	go func() { _, _ = io.CopyN(server, server, 5) }()
	roundTrip(t, client, "later") // resets the deadline
}

// The control connection's Close ends every stream, on both sides.
func TestQUICCloseFailsPendingReads(t *testing.T) {
	for _, closer := range []string{"dialer", "listener"} {
		t.Run(closer+" closes", func(t *testing.T) {
			checkQUICLeaks(t)
			ctx := testContext(t)
			client, server, _, _ := quicPair(t)
			cs, err := client.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(cs, "x"); err != nil {
				t.Fatal(err)
			}
			ss, err := server.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = ss.SetDeadline(time.Now().Add(testTimeout))
			if _, err := io.ReadFull(ss, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}

			local, remote := StreamConn(client), StreamConn(server)
			localStream, remoteStream := cs, ss
			if closer == "listener" {
				local, remote = server, client
				localStream, remoteStream = ss, cs
			}
			for _, c := range []net.Conn{local, remote, localStream, remoteStream} {
				_ = c.SetDeadline(time.Now().Add(testTimeout))
			}
			localReads := []<-chan readResult{readAsync(local), readAsync(localStream)}
			remoteReads := []<-chan readResult{readAsync(remote), readAsync(remoteStream)}
			time.Sleep(20 * time.Millisecond) // let the Reads block
			if err := local.Close(); err != nil {
				t.Fatal(err)
			}
			for i, ch := range localReads {
				if r := <-ch; !errors.Is(r.err, net.ErrClosed) {
					t.Errorf("local read %d: %v, want net.ErrClosed", i, r.err)
				}
			}
			for i, ch := range remoteReads {
				r := <-ch
				var ae *quic.ApplicationError
				if !errors.As(r.err, &ae) || !ae.Remote || ae.ErrorCode != quicCodeClosed {
					t.Errorf("remote read %d: %v, want the peer's close", i, r.err)
				}
				var ne net.Error
				if errors.As(r.err, &ne) && ne.Timeout() {
					t.Errorf("remote read %d timed out", i)
				}
			}
			if _, err := local.OpenStream(ctx); !errors.Is(err, net.ErrClosed) {
				t.Errorf("OpenStream after Close: %v, want net.ErrClosed", err)
			}
			if _, err := remote.OpenStream(ctx); err == nil {
				t.Error("peer's OpenStream after Close succeeded")
			}
			if _, err := remote.AcceptStream(ctx); err == nil {
				t.Error("peer's AcceptStream after Close succeeded")
			}
			if _, err := remote.Write([]byte("x")); err == nil {
				t.Error("peer's Write after Close succeeded")
			}
		})
	}
}

// expectQUICRejected checks that a client the server must refuse fails at
// Dial or at its first read, with an error matching ErrTLS.
func expectQUICRejected(t *testing.T, c net.Conn, err error) {
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
	if !errors.Is(err, ErrTLS) {
		t.Errorf("rejection %v does not match ErrTLS", err)
	}
}

func TestQUICMutualTLS(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	dir := t.TempDir()
	certs := testcerts.Write(t, dir)
	ln := listenQUICTest(t, &Config{
		CertFile: certs.ServerCert, KeyFile: certs.ServerKey, CAFile: certs.CACert,
	})
	accepted := make(chan net.Conn, 8)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(testTimeout))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})

	t.Run("no client certificate", func(t *testing.T) {
		c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert})
		expectQUICRejected(t, c, err)
	})
	t.Run("certificate of another CA", func(t *testing.T) {
		other := testcerts.NewCA(t, "Other CA")
		certFile, keyFile := other.Issue(t, dir, "intruder", testcerts.Client)
		c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert, CertFile: certFile, KeyFile: keyFile})
		expectQUICRejected(t, c, err)
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
		// The rejected clients never reached Accept.
		s := <-accepted
		peers := s.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState().PeerCertificates
		if len(peers) == 0 || peers[0].Subject.CommonName != "client" {
			t.Errorf("listener sees peer certificates %v, want the client's", peers)
		}
	})
}

func TestQUICVerifyFailures(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	_, _, ln, certs := quicPair(t)

	_, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert, ServerName: "example.com"})
	var hostErr x509.HostnameError
	if !errors.Is(err, ErrTLS) || !errors.As(err, &hostErr) {
		t.Errorf("Dial with a wrong ServerName: %v, want ErrTLS wrapping x509.HostnameError", err)
	}
	if errors.Is(err, ErrConfig) {
		t.Errorf("handshake failure %v matches ErrConfig", err)
	}
	if err != nil && !strings.Contains(err.Error(), "Config.ServerName") {
		t.Errorf("Dial with a wrong ServerName: %q does not name Config.ServerName", err)
	}
	_, err = Dial(ctx, ln.URL(), nil)
	var authErr x509.UnknownAuthorityError
	if !errors.Is(err, ErrTLS) || !errors.As(err, &authErr) {
		t.Errorf("Dial with system roots: %v, want ErrTLS wrapping x509.UnknownAuthorityError", err)
	}
	if err != nil && !strings.Contains(err.Error(), "Config.CAFile") {
		t.Errorf("Dial with system roots: %q does not say to set Config.CAFile", err)
	}
}

func TestQUICALPN(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ca := testcerts.NewCA(t, "ALPN CA")

	t.Run("client without arbor/1", func(t *testing.T) {
		ln := listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
		roots, err := os.ReadFile(certs.CACert)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(roots)
		for _, protos := range [][]string{{"h3"}, {"h3", "arbor/2"}} {
			tc := &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: protos}
			qc, err := quic.DialAddr(ctx, ln.Addr().String(), tc, nil)
			if err == nil {
				_ = qc.CloseWithError(0, "")
				t.Fatalf("quic-go client with ALPN %q connected", protos)
			}
			var te *quic.TransportError
			if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() || !te.Remote {
				t.Errorf("ALPN %q: %v, want a TLS alert from the server", protos, err)
			}
		}
	})

	t.Run("server without arbor/1", func(t *testing.T) {
		server := ca.IssueTLS(t, "server", testcerts.Server)
		tc := &tls.Config{Certificates: []tls.Certificate{server}, NextProtos: []string{"h3"}}
		// A Transport of our own, closed synchronously: a quic.ListenAddr
		// server keeps its socket until its closed connections expire.
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		tr := &quic.Transport{Conn: pc}
		defer tr.Close()
		ql, err := tr.Listen(tc, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ql.Close()
		_, err = Dial(ctx, "quic://"+ql.Addr().String(), &Config{TLS: &tls.Config{RootCAs: ca.Pool()}})
		if !errors.Is(err, ErrTLS) {
			t.Errorf("Dial to an h3 server: %v, want ErrTLS", err)
		}
	})

	t.Run("Config.TLS protocols are replaced", func(t *testing.T) {
		server := ca.IssueTLS(t, "server", testcerts.Server)
		ln := listenQUICTest(t, &Config{TLS: &tls.Config{
			Certificates: []tls.Certificate{server}, NextProtos: []string{"h3"},
		}})
		accepted := acceptOne(ln)
		c, err := Dial(ctx, ln.URL(), &Config{TLS: &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2"}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if s := <-accepted; s != nil {
			s.Close()
		} else {
			t.Error("Accept failed")
		}
	})
}

func TestQUICConfigErrors(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	listens := []struct {
		name string
		cfg  *Config
	}{
		{"nil config", nil},
		{"cert without key", &Config{CertFile: certs.ServerCert}},
		{"TLS without certificate", &Config{TLS: &tls.Config{}}},
		{"TLS capped at 1.2", &Config{TLS: &tls.Config{MaxVersion: tls.VersionTLS12}}},
	}
	for _, tt := range listens {
		ln, err := Listen(ctx, "quic://127.0.0.1:0", tt.cfg)
		if err == nil {
			ln.Close()
			t.Errorf("Listen with %s succeeded", tt.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !errors.Is(err, ErrTLS) {
			t.Errorf("Listen with %s: %v, want ErrConfig and ErrTLS", tt.name, err)
		}
		// Without a certificate, the error says what to set and how.
		if tt.cfg == nil || tt.cfg.TLS == nil {
			for _, want := range []string{"quic:// listener needs a certificate", "Config.KeyFile", "arbor.WithTransport", "arbor certs"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Listen with %s: %q does not say %q", tt.name, err, want)
				}
			}
		}
	}
	dials := []struct {
		name string
		cfg  *Config
	}{
		{"key without cert", &Config{KeyFile: certs.ClientKey}},
		{"missing CA file", &Config{CAFile: certs.CACert + ".missing"}},
		{"TLS capped at 1.2", &Config{TLS: &tls.Config{MaxVersion: tls.VersionTLS12}}},
	}
	for _, tt := range dials {
		c, err := Dial(ctx, "quic://127.0.0.1:1", tt.cfg)
		if err == nil {
			c.Close()
			t.Errorf("Dial with %s succeeded", tt.name)
			continue
		}
		if !errors.Is(err, ErrConfig) || !errors.Is(err, ErrTLS) {
			t.Errorf("Dial with %s: %v, want ErrConfig and ErrTLS", tt.name, err)
		}
	}
	if _, err := Listen(ctx, "quic://127.0.0.1", &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey}); !errors.Is(err, ErrConfig) {
		t.Errorf("Listen without a port: %v, want ErrConfig", err)
	}
}

// Over UDP nothing answers a dial to a port without a QUIC server, so only
// ctx (or quic-go's handshake timeout) ends it.
func TestQUICDialCanceled(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	cfg := &Config{CAFile: certs.CACert}

	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // swallows every packet
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()

	t.Run("canceled while dialing", func(t *testing.T) {
		dctx, cancel := context.WithCancel(ctx)
		defer cancel()
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		defer timer.Stop()
		start := time.Now()
		c, err := Dial(dctx, "quic://"+silent.LocalAddr().String(), cfg)
		if err == nil {
			c.Close()
			t.Fatal("Dial to a silent socket succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial: %v, want context.Canceled", err)
		}
		if errors.Is(err, ErrTLS) || errors.Is(err, ErrConfig) {
			t.Errorf("Dial: %v matches ErrTLS or ErrConfig", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Dial took %v after its context was canceled at 100ms", d)
		}
	})
	t.Run("refused, nothing bound", func(t *testing.T) {
		// The dialer's socket is connected, so the kernel's ICMP
		// port-unreachable ends the dial at once, like TCP's RST.
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		c, err := Dial(dctx, "quic://"+closedAddr, cfg)
		if err == nil {
			c.Close()
			t.Fatal("Dial to a closed port succeeded")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Dial: %v, want connection refused", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("refusal took %v", d)
		}
	})
	t.Run("already canceled", func(t *testing.T) {
		dctx, cancel := context.WithCancel(ctx)
		cancel()
		c, err := Dial(dctx, "quic://"+silent.LocalAddr().String(), cfg)
		if err == nil {
			c.Close()
			t.Fatal("Dial with a canceled context succeeded")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dial: %v, want context.Canceled", err)
		}
	})
}

func TestQUICListenerClose(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	client, server, ln, certs := quicPair(t)

	pending := acceptOne(ln)
	time.Sleep(20 * time.Millisecond) // let Accept block
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-pending:
		if c != nil {
			t.Fatal("Accept returned a connection after Close")
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not unblock Accept")
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}

	// Accepted connections outlive the listener, streams included.
	go func() { _, _ = io.CopyN(server, server, 5) }()
	roundTrip(t, client, "alive")
	var wg sync.WaitGroup
	echoStreams(ctx, t, server, 1, &wg)
	s, err := client.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, s, "stream alive")
	s.Close()
	wg.Wait()

	// But no new connection gets in.
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if c, err := Dial(dctx, ln.URL(), &Config{CAFile: certs.CACert}); err == nil {
		c.Close()
		t.Error("Dial to a closed listener succeeded")
	}
	// Closing the last connection releases the socket (checkQUICLeaks).
}

// A client that completes its handshake but never opens its control
// stream does not hold up Accept, nor does one with a bad preamble get in.
func TestQUICAcceptNotBlocked(t *testing.T) {
	checkQUICLeaks(t)
	ctx := testContext(t)
	certs := testcerts.Write(t, t.TempDir())
	ln := listenQUICTest(t, &Config{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	ca, err := os.ReadFile(certs.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tc := &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: []string{QUICALPN}}

	silent, err := quic.DialAddr(ctx, ln.Addr().String(), tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseWithError(0, "")

	bad, err := quic.DialAddr(ctx, ln.Addr().String(), tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.CloseWithError(0, "")
	bs, err := bad.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Write([]byte{0xff}); err != nil {
		t.Fatal(err)
	}

	accepted := acceptOne(ln)
	c, err := Dial(ctx, ln.URL(), &Config{CAFile: certs.CACert})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if s == nil {
		t.Fatal("Accept failed")
	}
	defer s.Close()
	go func() { _, _ = io.CopyN(s, s, 4) }()
	roundTrip(t, c, "ping")

	// The bad client is turned away with a protocol error.
	_ = bs.SetReadDeadline(time.Now().Add(testTimeout))
	_, err = bs.Read(make([]byte, 1))
	var ae *quic.ApplicationError
	if !errors.As(err, &ae) || !ae.Remote || ae.ErrorCode != quicCodeProtocol {
		t.Errorf("client with a bad preamble: %v, want the listener's protocol error", err)
	}
}

// TryWrite queues what fits in the control stream's flow-control window
// at once and, when all of it does not, nothing (0, nil): the caller
// writes it later with Write. After Close it fails.
func TestQUICTryWrite(t *testing.T) {
	checkQUICLeaks(t)
	client, server, _, _ := quicPair(t)
	tw := client.(*quicConn)
	b := make([]byte, 64<<10)
	if n, _, err := tw.TryWrite(b[:100]); n != 100 || err != nil {
		t.Fatalf("TryWrite on an empty stream: %d, %v", n, err)
	}
	// The server reads nothing: the window fills, then TryWrite refuses.
	full := false
	for i := 0; i < 1000 && !full; i++ {
		n, _, err := tw.TryWrite(b)
		if err != nil {
			t.Fatal(err)
		}
		full = n == 0
	}
	if !full {
		t.Fatal("TryWrite never refused, 64 MB into a stream nobody reads")
	}
	// What it queued arrives whole: the server reads it.
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(server, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if _, _, err := tw.TryWrite(b[:1]); err == nil || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("TryWrite after Close: %v, want net.ErrClosed", err)
	}
}
