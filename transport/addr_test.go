package transport

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in   string
		want Addr
		str  string // String(), when it differs from in
	}{
		{in: "tcp://127.0.0.1:8080", want: Addr{Scheme: "tcp", Host: "127.0.0.1:8080"}},
		{in: "tcp://:0", want: Addr{Scheme: "tcp", Host: ":0"}},
		{in: "tcp://[::1]:65535", want: Addr{Scheme: "tcp", Host: "[::1]:65535"}},
		{in: "TCP://example.com:80", want: Addr{Scheme: "tcp", Host: "example.com:80"}, str: "tcp://example.com:80"},
		{in: "localhost:9000", want: Addr{Scheme: "tcp", Host: "localhost:9000"}, str: "tcp://localhost:9000"},
		{in: "[::1]:1", want: Addr{Scheme: "tcp", Host: "[::1]:1"}, str: "tcp://[::1]:1"},
		{in: ":0", want: Addr{Scheme: "tcp", Host: ":0"}, str: "tcp://:0"},
		{in: "tls://localhost:443", want: Addr{Scheme: "tls", Host: "localhost:443"}},
		{in: "quic://127.0.0.1:0", want: Addr{Scheme: "quic", Host: "127.0.0.1:0"}},
		{in: "QUIC://[::1]:443", want: Addr{Scheme: "quic", Host: "[::1]:443"}, str: "quic://[::1]:443"},
		{in: "unix:/tmp/a.sock", want: Addr{Scheme: "unix", Path: "/tmp/a.sock"}},
		{in: "unix:///tmp/a.sock", want: Addr{Scheme: "unix", Path: "/tmp/a.sock"}, str: "unix:/tmp/a.sock"},
		{in: "unix:rel/a.sock", want: Addr{Scheme: "unix", Path: "rel/a.sock"}},
		{in: "unix:@abstract", want: Addr{Scheme: "unix", Path: "@abstract"}},
		{in: "unix-abstract:calc", want: Addr{Scheme: "unix", Path: "@calc"}, str: "unix:@calc"},
		{in: "UNIX-ABSTRACT:a/b", want: Addr{Scheme: "unix", Path: "@a/b"}, str: "unix:@a/b"},
		{in: "*:8080", want: Addr{Scheme: "tcp", Host: ":8080"}, str: "tcp://:8080"},
		{in: "tcp://*:0", want: Addr{Scheme: "tcp", Host: ":0"}, str: "tcp://:0"},
		{in: "quic://*:443", want: Addr{Scheme: "quic", Host: ":443"}, str: "quic://:443"},
		{in: "unix:////odd", want: Addr{Scheme: "unix", Path: "//odd"}},
		{in: "Unix:/x", want: Addr{Scheme: "unix", Path: "/x"}, str: "unix:/x"},
		{in: "mem:svc", want: Addr{Scheme: "mem", Path: "svc"}},
		{in: "mem://svc", want: Addr{Scheme: "mem", Path: "svc"}, str: "mem:svc"},
		{in: "mem:a:b", want: Addr{Scheme: "mem", Path: "a:b"}},
	}
	for _, tt := range tests {
		got, err := ParseAddr(tt.in)
		if err != nil {
			t.Errorf("ParseAddr(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseAddr(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if s := got.String(); s != str {
			t.Errorf("ParseAddr(%q).String() = %q, want %q", tt.in, s, str)
		}
		if again, err := ParseAddr(got.String()); err != nil || again != got {
			t.Errorf("ParseAddr(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseAddrErrors(t *testing.T) {
	tests := []struct {
		in, reason string // reason: a substring of the error
	}{
		{"", "empty address"},
		{"unix-abstract:", "empty abstract socket name"},
		{"unix:@", "empty abstract socket name"},
		{"*:", "missing port"},
		{"*", "missing port"},
		{"localhost", "missing port"},
		{"localhost:", "missing port"},
		{"tcp://localhost", "missing port"},
		{"tcp://localhost:", "missing port"},
		{"tcp://", "missing host:port"},
		{"tls://h:99999", "invalid port"},
		{"tcp://h:-1", "invalid port"},
		{"tcp://h:http", "invalid port"},
		{"tcp://h:1/path", "unexpected path"},
		{"tcp://user@h:1", "invalid character"},
		{"tcp://h :1", "invalid character"},
		{"tcp://::1:80", "too many colons"},
		{"tcp:h:1", "tcp addresses are written tcp://host:port"},
		{"quic:h:1", "quic addresses are written quic://host:port"},
		{"quic://h", "missing port"},
		{"http://h:1", `unknown scheme "http"`},
		{"://h:1", "missing scheme"},
		{"quick:x", `unknown scheme "quick"`},
		{"unix:", "empty socket path"},
		{"unix://", "empty socket path"},
		{"unix://rel", "absolute path"},
		{"mem:", "empty mem name"},
		{"mem://", "empty mem name"},
		{"mem:///x", "must not start with '/'"},
		{"tcp://h:1\n", "control character"},
		{"unix:/a\x00b", "control character"},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.in)
		if err == nil {
			t.Errorf("ParseAddr(%q) = %+v, want error", tt.in, a)
			continue
		}
		var ae *AddrError
		if !errors.As(err, &ae) || ae.Addr != tt.in {
			t.Errorf("ParseAddr(%q): error %#v is not an *AddrError naming the address", tt.in, err)
		}
		if !errors.Is(err, ErrConfig) {
			t.Errorf("ParseAddr(%q): error %v does not match ErrConfig", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("ParseAddr(%q): error %q does not say %q", tt.in, err, tt.reason)
		}
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:0", "tls://[::1]:443", "localhost:80", "unix:/tmp/s",
		"unix:///tmp/s", "unix:////x", "unix:rel", "mem:name", "mem://name",
		"quic://h:1", "", "tcp://h", "unix://", "mem:///", "a:b:c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("ParseAddr(%q): error %v does not match ErrConfig", s, err)
			}
			return
		}
		switch a.Scheme {
		case SchemeTCP, SchemeTLS, SchemeQUIC:
			if a.Host == "" || a.Path != "" {
				t.Fatalf("ParseAddr(%q) = %+v", s, a)
			}
		case SchemeUnix, SchemeMem:
			if a.Path == "" || a.Host != "" {
				t.Fatalf("ParseAddr(%q) = %+v", s, a)
			}
		default:
			t.Fatalf("ParseAddr(%q) = %+v: unknown scheme", s, a)
		}
		again, err := ParseAddr(a.String())
		if err != nil {
			t.Fatalf("ParseAddr(%q) = %+v, but its String %q does not parse: %v", s, a, a.String(), err)
		}
		if again != a {
			t.Fatalf("ParseAddr(%q) = %+v, but ParseAddr(%q) = %+v", s, a, a.String(), again)
		}
	})
}
