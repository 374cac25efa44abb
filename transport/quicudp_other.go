//go:build !(darwin || linux || freebsd)

package transport

import "net"

// quicListenerConn: quic-go does not batch here; pc as it is.
func quicListenerConn(pc net.PacketConn) net.PacketConn { return pc }
