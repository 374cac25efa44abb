package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Throwaway certificates for the tls:// and quic:// runners: a CA and a
// server certificate it signs (ECDSA P-256, SANs 127.0.0.1, ::1 and
// localhost, valid for a day), made once per process in memory. Each runner
// writes them to its own temporary directory (certFiles) and removes it on
// Close. The main module's internal/testcerts does the same for its tests
// but is internal, so bench cannot import it.

type certPEMs struct {
	ca, cert, key []byte
}

var (
	certsOnce sync.Once
	certsVal  certPEMs
	certsErr  error
)

func benchCerts() (certPEMs, error) {
	certsOnce.Do(func() { certsVal, certsErr = makeCerts() })
	return certsVal, certsErr
}

func makeCerts() (certPEMs, error) {
	serial := func() (*big.Int, error) {
		return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certPEMs{}, err
	}
	sn, err := serial()
	if err != nil {
		return certPEMs{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Arbor bench CA", Organization: []string{"Arbor bench"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return certPEMs{}, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return certPEMs{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return certPEMs{}, err
	}
	if sn, err = serial(); err != nil {
		return certPEMs{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "127.0.0.1", Organization: []string{"Arbor bench"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return certPEMs{}, fmt.Errorf("server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return certPEMs{}, err
	}
	return certPEMs{
		ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// certFiles are the PEM files in one runner's temporary directory.
type certFiles struct {
	dir               string // remove it when done
	caFile            string // the CA certificate (for clients)
	certFile, keyFile string // the server's certificate and key
}

// writeCerts makes a temporary directory and writes the process's
// throwaway certificates into it.
func writeCerts() (certFiles, error) {
	c, err := benchCerts()
	if err != nil {
		return certFiles{}, fmt.Errorf("generating certificates: %w", err)
	}
	dir, err := os.MkdirTemp("", "arbor-bench-")
	if err != nil {
		return certFiles{}, err
	}
	f := certFiles{
		dir:      dir,
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
	}
	for _, w := range []struct {
		path string
		data []byte
		perm os.FileMode
	}{{f.caFile, c.ca, 0o644}, {f.certFile, c.cert, 0o644}, {f.keyFile, c.key, 0o600}} {
		if err := os.WriteFile(w.path, w.data, w.perm); err != nil {
			os.RemoveAll(dir)
			return certFiles{}, err
		}
	}
	return f, nil
}

// withCA is a child server's address for a client that must trust the
// throwaway CA in caFile: "ADDR CAFILE" (splitCA reads it back).
func withCA(addr, caFile string) string { return addr + " " + caFile }

// splitCA reads an address made by withCA.
func splitCA(addr string) (string, string, error) {
	a, ca, ok := strings.Cut(addr, " ")
	if !ok {
		return "", "", fmt.Errorf("address %q: want an address and a CA file", addr)
	}
	return a, ca, nil
}
