package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const certsAbout = `Writes a development certificate authority and, signed by it, a server
certificate and a client certificate (for mutual TLS), as PEM files in DIR:

  ca.pem ca-key.pem server.pem server-key.pem client.pem client-key.pem

The server certificate names every --host (default: localhost, 127.0.0.1
and ::1). Keys are ECDSA P-256; certificates are valid for --days days.
Existing files are not overwritten unless --force is given.

  arbor serve --listen tls://127.0.0.1:7451 --cert DIR/server.pem --key DIR/server-key.pem --ca DIR/ca.pem
  arbor call --ca DIR/ca.pem --cert DIR/client.pem --key DIR/client-key.pem tls://127.0.0.1:7451 add 1 2
`

// hostList is a repeatable --host flag.
type hostList []string

func (h *hostList) String() string     { return strings.Join(*h, ",") }
func (h *hostList) Set(v string) error { *h = append(*h, v); return nil }

// certs runs the certs command.
func certs(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("certs", "--dir DIR [--host NAME]...", certsAbout, stderr)
	dir := fs.String("dir", "", "`directory` to write the PEM files to (created if missing)")
	var hosts hostList
	fs.Var(&hosts, "host", "DNS `name` or IP address the server certificate is valid for (repeatable)")
	days := fs.Int("days", 365, "validity in `days`")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *dir == "" {
		return usageError(fs, stderr, "--dir is required")
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	if *days <= 0 {
		return usageError(fs, stderr, "--days must be positive, got %d", *days)
	}
	if len(hosts) == 0 {
		hosts = hostList{"localhost", "127.0.0.1", "::1"}
	}
	files, err := writeCerts(*dir, hosts, time.Duration(*days)*24*time.Hour, *force)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	for _, f := range files {
		fmt.Fprintln(stdout, "wrote", f)
	}
	return exitOK
}

func writeCerts(dir string, hosts []string, validity time.Duration, force bool) ([]string, error) {
	names := []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"}
	if !force {
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
				return nil, fmt.Errorf("%s exists (use --force to overwrite)", filepath.Join(dir, n))
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Arbor development CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, hosts []string) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(validity),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		return der, key, err
	}
	srvDER, srvKey, err := issue(hosts[0], x509.ExtKeyUsageServerAuth, hosts)
	if err != nil {
		return nil, err
	}
	cliDER, cliKey, err := issue("arbor client", x509.ExtKeyUsageClientAuth, nil)
	if err != nil {
		return nil, err
	}
	var written []string
	write := func(name, typ string, der []byte, mode os.FileMode) error {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			return err
		}
		written = append(written, p)
		return nil
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte { b, _ := x509.MarshalPKCS8PrivateKey(k); return b }
	for _, f := range []struct {
		name, typ string
		der       []byte
		mode      os.FileMode
	}{
		{"ca.pem", "CERTIFICATE", caDER, 0o644},
		{"ca-key.pem", "PRIVATE KEY", keyDER(caKey), 0o600},
		{"server.pem", "CERTIFICATE", srvDER, 0o644},
		{"server-key.pem", "PRIVATE KEY", keyDER(srvKey), 0o600},
		{"client.pem", "CERTIFICATE", cliDER, 0o644},
		{"client-key.pem", "PRIVATE KEY", keyDER(cliKey), 0o600},
	} {
		if err := write(f.name, f.typ, f.der, f.mode); err != nil {
			return written, err
		}
	}
	return written, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
