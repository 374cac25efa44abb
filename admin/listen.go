package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// DefaultAddr is where the admin endpoint listens when no address is
// given: loopback, a port the kernel chooses.
const DefaultAddr = "127.0.0.1:0"

// Listen binds the admin endpoint's address. An address without a host
// (":9090", "9090") binds loopback, never every interface: exposing the
// endpoint takes naming a host (0.0.0.0:9090, a public address). The
// host may be given in brackets for IPv6 ([::1]:9090).
func Listen(addr string) (net.Listener, error) {
	bind, err := BindAddr(addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", bind, err)
	}
	return l, nil
}

// BindAddr is the host:port Listen binds for addr.
func BindAddr(addr string) (string, error) {
	a := strings.TrimSpace(addr)
	a = strings.TrimPrefix(a, "http://")
	if a == "" {
		return DefaultAddr, nil
	}
	if !strings.Contains(a, ":") {
		if strings.Trim(a, "0123456789") != "" {
			return "", fmt.Errorf("admin: address %q has no port (HOST:PORT, :PORT or PORT; :0 picks one)", addr)
		}
		a = ":" + a // a bare port
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("admin: address %q: want HOST:PORT or :PORT (%v)", addr, err)
	}
	if port == "" {
		return "", fmt.Errorf("admin: address %q has no port (use :0 for any)", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Server is a running admin endpoint.
type Server struct {
	l      net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Serve serves h on l in the background: HTTP/1.1 and h2c (HTTP/2 in
// plain text, for gRPC health probes). Close it when done.
func Serve(l net.Listener, h http.Handler) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx }, // cancelled by Close: event streams end
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	s := &Server{l: l, srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		srv.Serve(l)
	}()
	return s
}

// URL is the endpoint's address, http://HOST:PORT.
func (s *Server) URL() string { return "http://" + s.l.Addr().String() }

// Addr is the address bound.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Close ends the event streams, lets requests in progress finish until
// ctx ends, and stops serving.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.srv.Close()
	}
	<-s.done
	return err
}
