// Package testproc freezes and thaws the child processes tests start, to
// play a stalled machine: its sockets stay open and nothing answers. It
// is for tests only, and not a process manager.
package testproc
