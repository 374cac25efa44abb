//go:build unix

package testproc

import (
	"os"
	"syscall"
	"testing"
)

// Freeze stops p (SIGSTOP).
func Freeze(t testing.TB, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP to process %d: %v", p.Pid, err)
	}
}

// Thaw continues a process Freeze stopped; for a running one it does
// nothing.
func Thaw(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
