//go:build unix

package conn

import "syscall"

// setRcvBuf asks for a socket receive buffer of n bytes.
func setRcvBuf(fd uintptr, n int) {
	_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
