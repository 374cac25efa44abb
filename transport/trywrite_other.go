//go:build !unix

package transport

import "net"

// rawWriter: no raw socket writes here, so callers' writes over TCP and
// TLS may wait.
type rawWriter struct{}

func newRawWriter(net.Conn) *rawWriter { return nil }

func (*rawWriter) TryWrite([]byte) (int, bool, error) { return 0, false, nil }
