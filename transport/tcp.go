package transport

import (
	"context"
	"net"
)

// listener adds URL to a net.Listener.
type listener struct {
	net.Listener
	url string
}

// URL implements Listener.
func (l *listener) URL() string { return l.url }

// listenTCP binds a TCP socket for a (a tcp or tls address) and returns it
// with the URL of the address actually bound.
func listenTCP(ctx context.Context, a Addr) (net.Listener, string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.Host)
	if err != nil {
		return nil, "", err
	}
	url := Addr{Scheme: a.Scheme, Host: ln.Addr().String()}.String()
	return ln, url, nil
}

// dialTCP connects to the host:port of a, honoring ctx.
func dialTCP(ctx context.Context, a Addr) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", a.Host)
}
