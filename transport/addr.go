package transport

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"unicode"
)

// The schemes an Addr may have.
const (
	SchemeTCP  = "tcp"  // tcp://host:port
	SchemeTLS  = "tls"  // tls://host:port, TLS 1.3 over TCP
	SchemeQUIC = "quic" // quic://host:port, QUIC (TLS 1.3) over UDP
	SchemeUnix = "unix" // unix:/path/to/socket or unix:relative/path
	// SchemeUnixAbstract is accepted by ParseAddr (unix-abstract:NAME, as
	// Cap'n Proto's EZ RPC spells it) and parsed as SchemeUnix with Path
	// "@NAME": a Linux abstract socket.
	SchemeUnixAbstract = "unix-abstract"
	SchemeMem          = "mem" // mem:name, scoped to a MemNetwork
)

// Addr is a parsed Arbor address.
//
// Its String form parses back to the same Addr: for every s that ParseAddr
// accepts, ParseAddr(a.String()) returns a again.
type Addr struct {
	// Scheme is one of SchemeTCP, SchemeTLS, SchemeQUIC, SchemeUnix or
	// SchemeMem.
	Scheme string
	// Host is host:port for tcp, tls and quic (host may be empty, meaning every
	// local interface when listening); it is empty for other schemes.
	Host string
	// Path is the socket path for unix and the name for mem; it is empty
	// for other schemes.
	Path string
}

// ParseAddr parses an Arbor address. It accepts
//
//	tcp://host:port        a TCP address; port 0 picks a free port
//	host:port              the same as tcp://host:port
//	tls://host:port        TLS 1.3 over TCP
//	quic://host:port       QUIC over UDP (TLS 1.3, native streams)
//	unix:/path, unix:///path, unix:relative/path
//	                       a Unix domain socket
//	unix:@name, unix-abstract:name
//	                       a Linux abstract Unix socket (no file)
//	mem:name, mem://name   an in-process connection within a MemNetwork
//
// A host of "*" (*:port, tcp://*:port) means every local interface, IPv4
// and IPv6, as an empty host does.
//
// Schemes are case-insensitive. Ports are numbers from 0 to 65535 (service
// names are not looked up). A malformed address yields an *AddrError that
// names the address and what is wrong with it.
func ParseAddr(s string) (Addr, error) {
	bad := func(reason string) (Addr, error) {
		return Addr{}, &AddrError{Addr: s, Reason: reason}
	}
	if s == "" {
		return bad("empty address")
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return bad("control character at byte " + strconv.Itoa(i))
	}
	if rest, ok := cutPrefixFold(s, SchemeUnixAbstract+":"); ok {
		if rest == "" {
			return bad("empty abstract socket name")
		}
		return Addr{Scheme: SchemeUnix, Path: "@" + rest}, nil
	}
	if rest, ok := cutPrefixFold(s, SchemeUnix+":"); ok {
		if abs, ok := strings.CutPrefix(rest, "//"); ok {
			if abs == "" {
				return bad("empty socket path")
			}
			if !strings.HasPrefix(abs, "/") {
				return bad("unix:// must be followed by an absolute path; write unix:" + abs + " for a relative one")
			}
			rest = abs
		}
		if rest == "" {
			return bad("empty socket path")
		}
		if rest == "@" {
			return bad("empty abstract socket name")
		}
		return Addr{Scheme: SchemeUnix, Path: rest}, nil
	}
	if rest, ok := cutPrefixFold(s, SchemeMem+":"); ok {
		rest = strings.TrimPrefix(rest, "//")
		if rest == "" {
			return bad("empty mem name")
		}
		if strings.HasPrefix(rest, "/") {
			return bad("mem name must not start with '/'")
		}
		return Addr{Scheme: SchemeMem, Path: rest}, nil
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		scheme = strings.ToLower(scheme)
		switch {
		case scheme == SchemeTCP || scheme == SchemeTLS || scheme == SchemeQUIC:
			if reason := checkHostPort(rest); reason != "" {
				return bad(reason)
			}
			return Addr{Scheme: scheme, Host: anyHost(rest)}, nil
		case scheme == "":
			return bad("missing scheme before ://")
		case isSchemeToken(scheme):
			return bad("unknown scheme " + strconv.Quote(scheme) + " (want tcp, tls, quic, unix or mem)")
		default:
			return bad("malformed scheme " + strconv.Quote(scheme))
		}
	}
	// No scheme: a bare host:port, or a scheme written without "//".
	first, after, hasColon := strings.Cut(s, ":")
	if !hasColon {
		return bad("missing port (want host:port or scheme://host:port)")
	}
	lower := strings.ToLower(first)
	if lower == SchemeTCP || lower == SchemeTLS || lower == SchemeQUIC {
		return bad(lower + " addresses are written " + lower + "://host:port")
	}
	if isSchemeToken(first) && after != "" && !strings.Contains(after, ":") && !isPort(after) {
		return bad("unknown scheme " + strconv.Quote(lower) + " (want tcp, tls, quic, unix or mem) or invalid port " + strconv.Quote(after))
	}
	if reason := checkHostPort(s); reason != "" {
		return bad(reason)
	}
	return Addr{Scheme: SchemeTCP, Host: anyHost(s)}, nil
}

// anyHost writes the host "*" (every interface) as the empty host, which
// the net package binds on every IPv4 and IPv6 interface.
func anyHost(hp string) string {
	if rest, ok := strings.CutPrefix(hp, "*:"); ok {
		return ":" + rest
	}
	return hp
}

// String returns the address in the form ParseAddr accepts:
// "tcp://host:port", "tls://host:port", "quic://host:port", "unix:/path" or
// "mem:name".
func (a Addr) String() string {
	switch a.Scheme {
	case SchemeTCP, SchemeTLS, SchemeQUIC:
		return a.Scheme + "://" + a.Host
	case SchemeUnix:
		if strings.HasPrefix(a.Path, "//") {
			// "unix://" + "//p" keeps the leading slashes that
			// "unix:" + "//p" would lose to the unix:// form.
			return "unix://" + a.Path
		}
		return "unix:" + a.Path
	case SchemeMem:
		return "mem:" + a.Path
	case "":
		return ""
	}
	return a.Scheme + ":" + a.Host + a.Path
}

// checkHostPort returns why hp is not a usable host:port, or "".
func checkHostPort(hp string) string {
	if hp == "" {
		return "missing host:port"
	}
	if i := strings.IndexAny(hp, "/?#@ \t"); i >= 0 {
		if hp[i] == '/' {
			return "unexpected path " + strconv.Quote(hp[i:]) + " after host:port"
		}
		return "invalid character " + strconv.QuoteRune(rune(hp[i])) + " in host:port"
	}
	_, port, err := net.SplitHostPort(hp)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return ae.Err
		}
		return err.Error()
	}
	if port == "" {
		return "missing port"
	}
	if !isPort(port) {
		return "invalid port " + strconv.Quote(port) + " (want a number from 0 to 65535)"
	}
	return ""
}

// isPort reports whether s is a decimal port number.
func isPort(s string) bool {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 16)
	return err == nil
}

// isSchemeToken reports whether s looks like a URL scheme: a letter
// followed by letters, digits, '+', '-' or '.'.
func isSchemeToken(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// cutPrefixFold is strings.CutPrefix with an ASCII case-insensitive prefix.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
