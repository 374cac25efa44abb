package arbor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testcerts"
)

func TestConfigTLSAndPortZero(t *testing.T) {
	files := testcerts.Write(t, t.TempDir())
	cfg := arbor.DefaultConfig()
	cfg.CertFile, cfg.KeyFile, cfg.CAFile = files.ServerCert, files.ServerKey, files.CACert
	cfg.KeepAlive = time.Second
	cfg.MaxFrameSize = 64 << 10
	srv := arbor.NewServer(arbor.WithConfig(cfg))
	mustS(t, arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil }))
	l, err := srv.Listen(context.Background(), "tls://127.0.0.1:0")
	mustS(t, err)
	defer srv.Close()
	if strings.HasSuffix(l.URL(), ":0") || !strings.HasPrefix(l.URL(), "tls://127.0.0.1:") {
		t.Fatalf("URL %q does not show the bound port", l.URL())
	}

	ccfg := arbor.DefaultConfig()
	ccfg.CertFile, ccfg.KeyFile, ccfg.CAFile = files.ClientCert, files.ClientKey, files.CACert
	c, err := arbor.Dial(context.Background(), l.URL(), arbor.WithConfig(ccfg))
	mustS(t, err)
	defer c.Close()
	if out, err := arbor.Call1[[]byte](context.Background(), c, "echo", []byte("hi")); err != nil || string(out) != "hi" {
		t.Fatalf("echo: %q %v", out, err)
	}
	// The server's frame limit is enforced on the client before sending.
	_, err = arbor.Call1[[]byte](context.Background(), c, "echo", make([]byte, 100<<10))
	if !errors.Is(err, arbor.ErrResourceExhausted) {
		t.Fatalf("oversized: %v", err)
	}

	// Mutual TLS: a client without a certificate is refused as Unauthenticated.
	nocert := arbor.DefaultConfig()
	nocert.CAFile = files.CACert
	c2, err := arbor.Dial(context.Background(), l.URL(), arbor.WithConfig(nocert))
	if err == nil {
		_, err = arbor.Call1[[]byte](context.Background(), c2, "echo", []byte("x"))
		c2.Close()
	}
	if !errors.Is(err, arbor.ErrUnauthenticated) || !errors.Is(err, arbor.ErrTLS) {
		t.Fatalf("client without certificate: %v", err)
	}
}

// Options given after WithConfig change their field and nothing else: one
// configuration surface, no disagreement.
func TestOptionsAndConfigAgree(t *testing.T) {
	cfg := arbor.DefaultConfig()
	cfg.MaxFrameSize = 8 << 10
	srv := arbor.NewServer(arbor.WithConfig(cfg), arbor.WithKeepAlive(time.Minute, 0))
	mustS(t, arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil }))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	defer srv.Close()
	c, err := arbor.Dial(context.Background(), l.URL())
	mustS(t, err)
	defer c.Close()
	// The frame limit from the Config survived the later option.
	if _, err := arbor.Call1[[]byte](context.Background(), c, "echo", make([]byte, 16<<10)); !errors.Is(err, arbor.ErrResourceExhausted) {
		t.Fatalf("16 KiB call with an 8 KiB limit: %v", err)
	}
	// And a later WithConfig replaces earlier options wholesale.
	srv2 := arbor.NewServer(arbor.WithMaxFrameSize(8<<10), arbor.WithConfig(arbor.DefaultConfig()))
	mustS(t, arbor.Handle1(srv2, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil }))
	l2, err := srv2.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	defer srv2.Close()
	c2, err := arbor.Dial(context.Background(), l2.URL())
	mustS(t, err)
	defer c2.Close()
	if _, err := arbor.Call1[[]byte](context.Background(), c2, "echo", make([]byte, 16<<10)); err != nil {
		t.Fatalf("16 KiB call after WithConfig restored the default: %v", err)
	}
}
