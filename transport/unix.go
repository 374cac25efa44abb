package transport

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// staleProbeTimeout bounds the dial that checks whether a leftover socket
// file still has a listener behind it.
const staleProbeTimeout = time.Second

// listenUnix binds a Unix domain socket. If the path is taken by a socket
// file that nothing listens on any more (left by a process that died), the
// file is removed and the bind retried; a live socket, or a file that is
// not a socket, is left alone and the bind error returned. Close removes
// the socket file. A relative path is made absolute first: the file
// removed at Close, and the URL clients dial, do not depend on the
// working directory of the moment.
func listenUnix(ctx context.Context, a Addr) (Listener, error) {
	if !strings.HasPrefix(a.Path, "@") && !filepath.IsAbs(a.Path) {
		abs, err := filepath.Abs(a.Path)
		if err != nil {
			return nil, err
		}
		a.Path = abs
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "unix", a.Path)
	if err != nil && errors.Is(err, syscall.EADDRINUSE) && removeStaleSocket(ctx, a.Path) {
		ln, err = lc.Listen(ctx, "unix", a.Path)
	}
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	url := Addr{Scheme: SchemeUnix, Path: ln.Addr().String()}.String()
	return &listener{Listener: ln, url: url}, nil
}

// removeStaleSocket removes the socket file at path if dialing it is
// refused, and reports whether it did.
func removeStaleSocket(ctx context.Context, path string) bool {
	if strings.HasPrefix(path, "@") { // Linux abstract namespace: no file
		return false
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	d := net.Dialer{Timeout: staleProbeTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		_ = c.Close()
		return false // live
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	return os.Remove(path) == nil
}

// dialUnix connects to the socket at a.Path, honoring ctx.
func dialUnix(ctx context.Context, a Addr) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", a.Path)
}
