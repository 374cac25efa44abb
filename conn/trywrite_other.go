//go:build !unix

package conn

import "net"

// newTryWriter: no raw socket writes here; callers' writes may wait.
func newTryWriter(net.Conn) tryWriter { return nil }
