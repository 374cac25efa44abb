package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/bridge"
)

// httpFlags are serve's flags for the gRPC/Connect bridge.
type httpFlags struct {
	plain, tls string // addresses; "" for none
	// The native gRPC server's addresses (h2c, TLS): gRPC only, without
	// net/http or connect-go.
	grpc, grpcTLS string
}

// httpBridge is the running bridge: its servers and listeners.
type httpBridge struct {
	servers []*http.Server
	grpc    []*bridge.GRPCServer
	done    chan error
}

// start listens on the bridge's addresses and serves srv's generated
// services there (gRPC, gRPC-Web, Connect), printing "http listening on
// URL" for each. Nothing is started without an address.
func (f *httpFlags) start(srv *arbor.Server, tf *tlsFlags, log *slog.Logger, stdout io.Writer) (*httpBridge, error) {
	b := &httpBridge{done: make(chan error, 4)}
	if f.plain == "" && f.tls == "" && f.grpc == "" && f.grpcTLS == "" {
		return b, nil
	}
	h := bridge.New(srv, bridge.Config{})
	if err := f.startGRPC(b, h, tf, log, stdout); err != nil {
		b.close(context.Background())
		return nil, err
	}
	type spec struct {
		addr   string
		scheme string
	}
	var specs []spec
	if f.plain != "" {
		specs = append(specs, spec{f.plain, "http"})
	}
	if f.tls != "" {
		if tf.cert == "" || tf.key == "" {
			b.close(context.Background())
			return nil, errors.New("--https needs --cert and --key")
		}
		specs = append(specs, spec{f.tls, "https"})
	}
	for _, s := range specs {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			b.close(context.Background())
			return nil, fmt.Errorf("listen %s: %w", s.addr, err)
		}
		hs := bridge.NewHTTPServer(h)
		hs.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		if s.scheme == "https" {
			tc, err := serverTLS(tf)
			if err != nil {
				l.Close()
				b.close(context.Background())
				return nil, fmt.Errorf("--https: %w", err)
			}
			tc.NextProtos = []string{"h2", "http/1.1"} // before the listener takes its copy: gRPC needs h2
			hs.TLSConfig = tc
			l = tls.NewListener(l, hs.TLSConfig.Clone())
		}
		url := s.scheme + "://" + l.Addr().String()
		fmt.Fprintf(stdout, "http listening on %s\n", url)
		log.Info("serving gRPC, gRPC-Web and Connect", "addr", url)
		b.servers = append(b.servers, hs)
		go func() {
			if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				b.done <- fmt.Errorf("serve %s: %w", url, err)
			}
		}()
	}
	return b, nil
}

// startGRPC starts the native gRPC servers, printing "grpc listening on
// HOST:PORT" (plain) or "grpcs listening on HOST:PORT" for each.
func (f *httpFlags) startGRPC(b *httpBridge, h *bridge.Handler, tf *tlsFlags, log *slog.Logger, stdout io.Writer) error {
	for _, s := range []struct{ addr, name string }{{f.grpc, "grpc"}, {f.grpcTLS, "grpcs"}} {
		if s.addr == "" {
			continue
		}
		cfg := bridge.GRPCConfig{Logger: log}
		if s.name == "grpcs" {
			if tf.cert == "" || tf.key == "" {
				return errors.New("--grpcs needs --cert and --key")
			}
			tc, err := serverTLS(tf)
			if err != nil {
				return fmt.Errorf("--grpcs: %w", err)
			}
			cfg.TLS = tc
		}
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.addr, err)
		}
		gs := bridge.NewGRPCServer(h, cfg)
		b.grpc = append(b.grpc, gs)
		addr := l.Addr().String()
		fmt.Fprintf(stdout, "%s listening on %s\n", s.name, addr)
		log.Info("serving gRPC natively", "addr", addr, "tls", cfg.TLS != nil)
		go func() {
			if err := gs.Serve(l); !errors.Is(err, bridge.ErrGRPCServerClosed) {
				b.done <- fmt.Errorf("serve gRPC on %s: %w", addr, err)
			}
		}()
	}
	return nil
}

// serverTLS is the TLS configuration of the bridge's listeners: the key
// pair of --cert and --key and, with --ca, mutual TLS, as serve's tls://
// listeners have it.
func serverTLS(tf *tlsFlags) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(tf.cert, tf.key)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if tf.ca != "" {
		pem, err := os.ReadFile(tf.ca)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", tf.ca)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// close shuts the bridge's servers down, waiting for calls until ctx ends.
func (b *httpBridge) close(ctx context.Context) {
	for _, hs := range b.servers {
		if err := hs.Shutdown(ctx); err != nil {
			hs.Close()
		}
	}
	for _, gs := range b.grpc {
		gs.Shutdown(ctx) // closes what is left when ctx ends
	}
}
