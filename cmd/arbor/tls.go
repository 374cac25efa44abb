package main

import (
	"flag"
	"io"

	"github.com/arbor-rpc/arbor/transport"
)

// tlsFlags are the TLS flags that serve, call and catalog share.
type tlsFlags struct {
	cert, key, ca, serverName string
}

// register adds the flags to fs; dialer selects the client's meaning of
// each flag and adds --server-name.
func (f *tlsFlags) register(fs *flag.FlagSet, dialer bool) {
	if dialer {
		fs.StringVar(&f.cert, "cert", "", "client certificate `file` (PEM) for mutual TLS; needs --key")
		fs.StringVar(&f.key, "key", "", "client private key `file` (PEM)")
		fs.StringVar(&f.ca, "ca", "", "CA bundle `file` (PEM) that verifies the server (default: system roots)")
		fs.StringVar(&f.serverName, "server-name", "", "`name` to verify in the server's certificate (default: the address's host)")
		return
	}
	fs.StringVar(&f.cert, "cert", "", "server certificate `file` (PEM); needed by tls:// listeners")
	fs.StringVar(&f.key, "key", "", "server private key `file` (PEM)")
	fs.StringVar(&f.ca, "ca", "", "CA bundle `file` (PEM); when set, clients must present a certificate it signed")
}

// config turns the flags into a transport configuration. Plain tcp:// and
// unix: addresses ignore it.
func (f *tlsFlags) config() *transport.Config {
	return &transport.Config{
		CertFile:   f.cert,
		KeyFile:    f.key,
		CAFile:     f.ca,
		ServerName: f.serverName,
	}
}

// parseDialer parses the flags of a command that dials, and refuses a
// client certificate without its key (or the reverse) as a usage error
// before anything is dialed. It returns the exit status and false when
// the command must stop.
func parseDialer(fs *flag.FlagSet, args []string, stderr io.Writer, tf *tlsFlags) (int, bool) {
	if err := fs.Parse(args); err != nil {
		return exitUsage, false
	}
	if (tf.cert == "") != (tf.key == "") {
		return usageError(fs, stderr, "--cert and --key go together (a client certificate and its private key): give both or neither"), false
	}
	return 0, true
}
