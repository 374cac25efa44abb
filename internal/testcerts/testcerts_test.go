package testcerts

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"testing"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestWrite(t *testing.T) {
	f := Write(t, t.TempDir())
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, f.CACert))

	server := readCert(t, f.ServerCert)
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		opts := x509.VerifyOptions{Roots: roots, DNSName: host}
		if _, err := server.Verify(opts); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Error("server certificate verified for example.com")
	}

	client := readCert(t, f.ClientCert)
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := client.Verify(opts); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := server.Verify(opts); err == nil {
		t.Error("server certificate verified for client auth")
	}

	for _, pair := range [][2]string{{f.ServerCert, f.ServerKey}, {f.ClientCert, f.ClientKey}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("load %s: %v", pair[0], err)
		}
	}
	fi, err := os.Stat(f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
}

func TestWriteHosts(t *testing.T) {
	f := Write(t, t.TempDir(), "arbor.test", "10.1.2.3")
	server := readCert(t, f.ServerCert)
	if len(server.DNSNames) != 1 || server.DNSNames[0] != "arbor.test" {
		t.Errorf("DNS names %v", server.DNSNames)
	}
	if len(server.IPAddresses) != 1 || !server.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) {
		t.Errorf("IP addresses %v", server.IPAddresses)
	}
	if server.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", server.PublicKeyAlgorithm)
	}
}

func TestSeparateCAs(t *testing.T) {
	a, b := NewCA(t, "A"), NewCA(t, "B")
	cert := b.IssueTLS(t, "client", Client)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.Pool(), KeyUsages: usage}); err == nil {
		t.Error("certificate of CA B verified against CA A")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: b.Pool(), KeyUsages: usage}); err != nil {
		t.Errorf("certificate of CA B against CA B: %v", err)
	}
}
