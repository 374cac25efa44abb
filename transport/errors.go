package transport

import (
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrTLS is matched (with errors.Is) by every error this package returns
// for a TLS failure: a certificate or key that cannot be loaded, a
// configuration that would allow less than TLS 1.3, or a failed handshake
// in Dial. The underlying error (from crypto/tls, crypto/x509, os, or the
// context) stays reachable with errors.Unwrap and errors.As.
//
// Handshakes of accepted connections happen on their first Read or Write
// (so that a slow client cannot hold up Accept); their errors come straight
// from crypto/tls.
var ErrTLS = errors.New("transport: tls")

// ErrConfig is matched (with errors.Is) by every error this package returns
// for a configuration it cannot use: a malformed address (see AddrError),
// a missing or unreadable file, PEM without usable certificates, a mem:
// address without a MemNetwork. A TLS configuration error matches both
// ErrConfig and ErrTLS.
var ErrConfig = errors.New("transport: config")

// ErrEarlyRejected is matched (with errors.Is) by the errors of a quic://
// connection whose server rejected the 0-RTT data it was sent (see
// EarlyConn): nothing written early was processed, and the connection is
// unusable; dial again (the new connection makes a full handshake).
var ErrEarlyRejected = errors.New("transport: 0-RTT data rejected by the server")

// AddrError reports an address that ParseAddr cannot accept. It matches
// ErrConfig.
type AddrError struct {
	Addr   string // the address as given
	Reason string // what is wrong with it
}

// Error implements error.
func (e *AddrError) Error() string {
	return fmt.Sprintf("transport: bad address %q: %s", e.Addr, e.Reason)
}

// Is reports whether target is ErrConfig.
func (e *AddrError) Is(target error) bool { return target == ErrConfig }

// kindError tags an underlying error as a TLS failure, a configuration
// failure, or both, while keeping it reachable through Unwrap.
type kindError struct {
	tls, config bool
	msg         string // what was being done, e.g. "load CA file \"ca.pem\""
	err         error  // the cause; may be nil
}

func (e *kindError) Error() string {
	prefix := ErrConfig.Error()
	if e.tls {
		prefix = ErrTLS.Error()
	}
	s := prefix + ": " + e.msg
	if e.err != nil {
		s += ": " + e.err.Error() + verifyHint(e.err)
	}
	return s
}

// verifyHint says what to set when a dialer could not verify the
// server's certificate, the first TLS error most users meet.
func verifyHint(err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	switch {
	case errors.As(err, &ua):
		return " (trust the server's CA with Config.CAFile, or give Config.TLS its RootCAs)"
	case errors.As(err, &he):
		return " (the name verified is Config.ServerName when set, else the address's host)"
	}
	return ""
}

func (e *kindError) Unwrap() error { return e.err }

func (e *kindError) Is(target error) bool {
	return (target == ErrTLS && e.tls) || (target == ErrConfig && e.config)
}

// configError reports a configuration problem unrelated to TLS.
func configError(err error, format string, args ...any) error {
	return &kindError{config: true, msg: fmt.Sprintf(format, args...), err: err}
}

// tlsError reports a TLS failure at run time, such as a handshake.
func tlsError(err error, format string, args ...any) error {
	return &kindError{tls: true, msg: fmt.Sprintf(format, args...), err: err}
}

// tlsConfigError reports a TLS configuration problem: it matches both
// ErrTLS and ErrConfig.
func tlsConfigError(err error, format string, args ...any) error {
	return &kindError{tls: true, config: true, msg: fmt.Sprintf(format, args...), err: err}
}
