package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Separate processes: a system's server in a child process (bench -serve
// NAME), its clients here. The child prints "ADDR host:port", then answers
// each "stats" line on stdin with "STATS <rss bytes> <goroutines> <cpu ns>"
// (its own VmRSS, runtime.NumGoroutine and getrusage), and exits when
// stdin closes. Used by the procs section (client and server each pinned
// to one core, like kitex-benchmark) and by connscale (the server's RSS per
// idle connection, apart from the clients').

// remoteSystem is a system that can serve in one process and be dialed
// from another.
type remoteSystem struct {
	name  string
	serve func(ctx context.Context) (addr string, stop func(), err error)
	dial  func(ctx context.Context, addr string) (Runner, error)
}

var remoteRegistry = map[string]remoteSystem{}

func registerRemote(s remoteSystem) { remoteRegistry[s.name] = s }

// serveChild is main for bench -serve NAME.
func serveChild(name string) {
	s, ok := remoteRegistry[name]
	if !ok {
		fatalf("-serve: unknown system %q", name)
	}
	raiseFDLimit()
	addr, stop, err := s.serve(context.Background())
	if err != nil {
		fatalf("-serve %s: %v", name, err)
	}
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "ADDR %s\n", addr)
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if strings.TrimSpace(in.Text()) == "stats" {
			runtime.GC() // RSS after a collection: what the connections hold, not garbage
			fmt.Fprintf(out, "STATS %d %d %d\n", readRSS(), runtime.NumGoroutine(), processCPU())
			out.Flush()
		}
	}
	stop()
}

// readRSS is this process's resident set size (VmRSS), in bytes.
func readRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// child is a server running in a child process.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

type childStats struct {
	rss        int64
	goroutines int
	cpu        time.Duration
}

// startChild runs this binary as -serve name, pinned to cpu (taskset) if
// cpu >= 0.
func startChild(name string, cpu int) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve", name}
	var cmd *exec.Cmd
	if cpu >= 0 {
		tp, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("taskset not found (util-linux): %w", err)
		}
		cmd = exec.Command(tp, append([]string{"-c", strconv.Itoa(cpu), self}, args...)...)
	} else {
		cmd = exec.Command(self, args...)
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	line, err := c.line()
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s server process: %w", name, err)
	}
	addr, ok := strings.CutPrefix(line, "ADDR ")
	if !ok {
		c.stop()
		return nil, fmt.Errorf("%s server process said %q, want ADDR", name, line)
	}
	c.addr = addr
	return c, nil
}

func (c *child) line() (string, error) {
	if !c.out.Scan() {
		if err := c.out.Err(); err != nil {
			return "", err
		}
		return "", errors.New("server process ended")
	}
	return c.out.Text(), nil
}

func (c *child) stats() (childStats, error) {
	if _, err := io.WriteString(c.in, "stats\n"); err != nil {
		return childStats{}, err
	}
	line, err := c.line()
	if err != nil {
		return childStats{}, err
	}
	var s childStats
	var cpu int64
	if _, err := fmt.Sscanf(line, "STATS %d %d %d", &s.rss, &s.goroutines, &cpu); err != nil {
		return childStats{}, fmt.Errorf("server process said %q: %w", line, err)
	}
	s.cpu = time.Duration(cpu)
	return s, nil
}

func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// remoteRunner is a client of a child server; Close closes the client
// and stops the child.
type remoteRunner struct {
	Runner
	child *child
}

// Dial implements Dialer when the system's client can.
func (r *remoteRunner) Dial(ctx context.Context) (Runner, error) {
	return remoteRegistry[r.name()].dial(ctx, r.child.addr)
}

func (r *remoteRunner) name() string { return r.child.cmd.Args[len(r.child.cmd.Args)-1] }

func (r *remoteRunner) Close() error {
	err := r.Runner.Close()
	r.child.stop()
	return err
}
