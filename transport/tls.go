package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
)

// listenTLS binds a TCP socket and wraps it in TLS. Accept returns a
// *tls.Conn whose handshake runs on its first Read or Write (or an explicit
// Handshake), so a client that stalls its handshake cannot hold up Accept
// for the others; callers should set a deadline before that first Read.
func listenTLS(ctx context.Context, a Addr, cfg *Config) (Listener, error) {
	tc, err := serverTLSConfig(cfg, a.Scheme)
	if err != nil {
		return nil, err
	}
	ln, url, err := listenTCP(ctx, a)
	if err != nil {
		return nil, err
	}
	return &listener{Listener: &tlsListener{Listener: ln, cfg: tc}, url: url}, nil
}

// tlsListener is tls.NewListener's, its connections over a spillConn (so
// that the connection layer's callers never wait to write: NewTryWriter).
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

// Accept implements net.Listener.
func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(withSpill(c), l.cfg), nil
}

// dialTLS connects over TCP and completes the TLS handshake before
// returning, so that handshake failures (and ctx ending during the
// handshake) surface here as errors matching ErrTLS.
func dialTLS(ctx context.Context, a Addr, cfg *Config) (net.Conn, error) {
	host, _, err := net.SplitHostPort(a.Host)
	if err != nil { // ParseAddr has checked it; kept for safety
		return nil, configError(err, "address %q", a.Host)
	}
	tc, err := clientTLSConfig(cfg, host)
	if err != nil {
		return nil, err
	}
	raw, err := dialTCP(ctx, a)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(withSpill(raw), tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, tlsError(err, "handshake with %s", a.Host)
	}
	return conn, nil
}

// serverTLSConfig builds a listener's TLS configuration: cfg.TLS cloned
// when set, otherwise the key pair in CertFile/KeyFile, plus mutual TLS
// against CAFile when that is set.
func serverTLSConfig(cfg *Config, scheme string) (*tls.Config, error) {
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
			return nil, tlsConfigError(nil, "listener: Config.TLS has no certificate")
		}
		if get := tc.GetConfigForClient; get != nil {
			// crypto/tls handshakes with the configuration it returns,
			// versions included.
			tc.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				c, err := get(hello)
				if c == nil || err != nil {
					return c, err
				}
				return requireTLS13(c.Clone())
			}
		}
		return requireTLS13(tc)
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, tlsConfigError(nil, "a %s listener needs a certificate: set Config.CertFile and Config.KeyFile, or Config.TLS (a server takes them with arbor.WithTransport; `arbor certs --dir DIR` writes development ones)", scheme+"://")
	}
	cert, err := loadKeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}}
	if cfg.CAFile != "" {
		pool, err := loadPool(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return requireTLS13(tc)
}

// clientTLSConfig builds a dialer's TLS configuration: cfg.TLS cloned when
// set, otherwise roots from CAFile (system roots when empty) and, when
// CertFile/KeyFile are set, a client certificate. The name verified is, in
// order, the configuration's own ServerName, cfg.ServerName, then host.
func clientTLSConfig(cfg *Config, host string) (*tls.Config, error) {
	var tc *tls.Config
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
	} else {
		tc = &tls.Config{}
		if cfg.CAFile != "" {
			pool, err := loadPool(cfg.CAFile)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = pool
		}
		if cfg.CertFile != "" || cfg.KeyFile != "" {
			if cfg.CertFile == "" || cfg.KeyFile == "" {
				return nil, tlsConfigError(nil, "dialer: Config.CertFile and Config.KeyFile must be set together")
			}
			cert, err := loadKeyPair(cfg.CertFile, cfg.KeyFile)
			if err != nil {
				return nil, err
			}
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	if tc.ServerName == "" {
		tc.ServerName = cfg.ServerName
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	return requireTLS13(tc)
}

// requireTLS13 raises tc's minimum version to TLS 1.3 and refuses a
// maximum below it.
func requireTLS13(tc *tls.Config) (*tls.Config, error) {
	if tc.MaxVersion != 0 && tc.MaxVersion < tls.VersionTLS13 {
		return nil, tlsConfigError(nil, "MaxVersion %s is below the required TLS 1.3", tls.VersionName(tc.MaxVersion))
	}
	if tc.MinVersion < tls.VersionTLS13 {
		tc.MinVersion = tls.VersionTLS13
	}
	return tc, nil
}

func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, tlsConfigError(err, "load key pair (cert %q, key %q)", certFile, keyFile)
	}
	return cert, nil
}

func loadPool(caFile string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, tlsConfigError(err, "read CA file")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, tlsConfigError(nil, "CA file %q holds no PEM certificate", caFile)
	}
	return pool, nil
}
