// Package testcerts makes throwaway certificates for tests: a certificate
// authority, server and client certificates it signs (ECDSA P-256), as PEM
// files in a directory the test owns, typically t.TempDir().
//
// It is for tests only: keys are generated fresh on every call and the
// certificates are valid for one day.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files holds the paths of the PEM files Write creates.
type Files struct {
	CACert                string // the CA certificate
	ServerCert, ServerKey string // server certificate for the hosts, and its key
	ClientCert, ClientKey string // client certificate, and its key
}

// Write creates a new CA and, signed by it, a server certificate valid for
// hosts and a client certificate, writes them to dir as PEM files (ca.pem,
// server.pem, server-key.pem, client.pem, client-key.pem) and returns their
// paths. With no hosts the server certificate covers "localhost",
// "127.0.0.1" and "::1". Any failure fails t.
func Write(t testing.TB, dir string, hosts ...string) Files {
	t.Helper()
	ca := NewCA(t, "Arbor Test CA")
	f := Files{CACert: ca.WriteCert(t, dir, "ca.pem")}
	f.ServerCert, f.ServerKey = ca.Issue(t, dir, "server", Server, hosts...)
	f.ClientCert, f.ClientKey = ca.Issue(t, dir, "client", Client)
	return f
}

// Usage says what a certificate is for.
type Usage int

const (
	// Server certificates authenticate a server to its clients.
	Server Usage = iota + 1
	// Client certificates authenticate a client to a server (mutual TLS).
	Client
)

// CA is a self-signed certificate authority held in memory.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA whose subject's common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Arbor tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testcerts: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testcerts: parse CA certificate: %v", err)
	}
	return &CA{Cert: cert, Key: key}
}

// CertPEM returns the CA certificate in PEM form.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool returns a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// WriteCert writes the CA certificate to dir/file and returns its path.
func (ca *CA) WriteCert(t testing.TB, dir, file string) string {
	t.Helper()
	return writeFile(t, filepath.Join(dir, file), ca.CertPEM(), 0o644)
}

// Issue creates a certificate for usage signed by ca, writes it to
// dir/name.pem and its key to dir/name-key.pem, and returns both paths.
// hosts (DNS names or IP addresses) become subject alternative names; a
// Server certificate with no hosts covers "localhost", "127.0.0.1" and
// "::1".
func (ca *CA) Issue(t testing.TB, dir, name string, usage Usage, hosts ...string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, name, usage, hosts)
	certFile = writeFile(t, filepath.Join(dir, name+".pem"), certPEM, 0o644)
	keyFile = writeFile(t, filepath.Join(dir, name+"-key.pem"), keyPEM, 0o600)
	return certFile, keyFile
}

// IssueTLS is Issue without files: it returns the certificate and key as a
// tls.Certificate, ready for a tls.Config.
func (ca *CA) IssueTLS(t testing.TB, name string, usage Usage, hosts ...string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, name, usage, hosts)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("testcerts: load issued key pair %s: %v", name, err)
	}
	return cert
}

func (ca *CA) issue(t testing.TB, name string, usage Usage, hosts []string) (certPEM, keyPEM []byte) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Arbor tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	switch usage {
	case Server:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if len(hosts) == 0 {
			hosts = []string{"localhost", "127.0.0.1", "::1"}
		}
	case Client:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		t.Fatalf("testcerts: unknown usage %d", usage)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("testcerts: create certificate %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testcerts: marshal key %s: %v", name, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testcerts: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testcerts: serial number: %v", err)
	}
	return n
}

func writeFile(t testing.TB, path string, data []byte, perm os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatalf("testcerts: %v", err)
	}
	return path
}
