package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// The procs section: client and server in separate processes, each pinned
// to one core (the server with taskset -c 1, this process to core 0 with
// sched_setaffinity and GOMAXPROCS 1), as kitex-benchmark runs them. Each
// cell reports the client's and the server's CPU per call, each from its
// own process's getrusage.

type procsConfig struct {
	dur, warm time.Duration
	subject   string
	systems   []string
	sizes     []int
	concs     []int
}

func runProcs(w io.Writer, pc procsConfig) error {
	fmt.Fprintln(w, "## Separate processes: client on core 0, server on core 1")
	fmt.Fprintln(w)
	pinned := false
	if runtime.NumCPU() >= 2 {
		if restore, err := pinCore0(); err == nil {
			pinned = true
			defer restore()
		}
	}
	serverCPU := -1
	if pinned {
		serverCPU = 1
	}
	var results []result
	var notes []string
	var firstErr error
	for _, name := range pc.systems {
		rs, ok := remoteRegistry[name]
		if !ok {
			notes = append(notes, name+": no separate-process runner; not measured")
			continue
		}
		ch, err := startChild(name, serverCPU)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: server process failed to start: %v", name, err))
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := rs.dial(ctx, ch.addr)
		cancel()
		if err != nil {
			ch.stop()
			notes = append(notes, fmt.Sprintf("%s: dial failed: %v", name, err))
			continue
		}
		var sampleErr error
		cpuSampler = func() func() time.Duration {
			s0, err := ch.stats()
			return func() time.Duration {
				s1, err2 := ch.stats()
				if err != nil || err2 != nil {
					sampleErr = fmt.Errorf("%s: server stats: %v %v", name, err, err2)
					return 0
				}
				return s1.cpu - s0.cpu
			}
		}
		for _, size := range pc.sizes {
			payload := makePayload(size)
			for _, c := range pc.concs {
				res, err := measure(name, r, payload, c, pc.warm, pc.dur)
				if err == nil {
					err = sampleErr
				}
				if err != nil {
					firstErr = err
					break
				}
				fmt.Fprintf(os.Stderr, "procs %-6s %-6s c%-4d %10s calls/s  CPU client %.1f server %.1f µs/call\n",
					name, sizeLabel(size), c, fmtRate(res.callsPerSec), res.clientCPU, res.serverCPU)
				results = append(results, res)
			}
		}
		cpuSampler = nil
		r.Close()
		ch.stop()
		if firstErr != nil {
			break
		}
	}
	printResults(w, results)
	printProcsRatios(w, results, pc)
	printProcsTransportRatios(w, results, pc)
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	if pinned {
		fmt.Fprintln(w, "- the server runs in a child process (bench -serve NAME) under taskset -c 1; this process, the client, is pinned to core 0 with GOMAXPROCS 1; one client connection shared by all callers.")
	} else {
		fmt.Fprintln(w, "- NOT pinned (fewer than 2 cores or sched_setaffinity refused): client and server processes share the cores.")
	}
	fmt.Fprintln(w, "- CPU µs/call client / server: each process's own user+system CPU (getrusage) over the cell, divided by calls; allocs/call and B/call are the client's alone here.")
	fmt.Fprintln(w)
	return firstErr
}

func printProcsRatios(w io.Writer, results []result, pc procsConfig) {
	by := byCell(results)
	fmt.Fprintf(w, "| payload | callers | %[1]s/grpc calls/s | %[1]s/floor calls/s | server CPU µs/call %[1]s vs grpc vs floor |\n", pc.subject)
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	for _, size := range pc.sizes {
		for _, c := range pc.concs {
			s, ok := by[cellKey{pc.subject, size, c}]
			if !ok {
				continue
			}
			g, gok := by[cellKey{"grpc", size, c}]
			f, fok := by[cellKey{"floor", size, c}]
			vg, vf, cpu := "n/a", "n/a", fmt.Sprintf("%.1f", s.serverCPU)
			if gok {
				vg = fmt.Sprintf("%.2fx", s.callsPerSec/g.callsPerSec)
				cpu += fmt.Sprintf(" vs %.1f", g.serverCPU)
			} else {
				cpu += " vs n/a"
			}
			if fok {
				vf = fmt.Sprintf("%.2fx", s.callsPerSec/f.callsPerSec)
				cpu += fmt.Sprintf(" vs %.1f", f.serverCPU)
			} else {
				cpu += " vs n/a"
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", sizeLabel(size), c, vg, vf, cpu)
		}
	}
	fmt.Fprintln(w)
}

// printProcsTransportRatios tables the transports section's bars in this
// shape: Arbor over QUIC against Arbor over TLS and grpc-go over TLS, and
// Arbor over TLS against grpc-go over TLS, for the cells that ran them.
func printProcsTransportRatios(w io.Writer, results []result, pc procsConfig) {
	by := byCell(results)
	pairs := [][2]string{{"arbor-quic", "arbor-tls"}, {"arbor-quic", "grpc-tls"}, {"arbor-tls", "grpc-tls"}}
	var rows []string
	for _, size := range pc.sizes {
		for _, c := range pc.concs {
			row := fmt.Sprintf("| %s | %d |", sizeLabel(size), c)
			measured := false
			for _, p := range pairs {
				a, aok := by[cellKey{p[0], size, c}]
				b, bok := by[cellKey{p[1], size, c}]
				if aok && bok {
					row += fmt.Sprintf(" %.2fx |", a.callsPerSec/b.callsPerSec)
					measured = true
				} else {
					row += " n/a |"
				}
			}
			if measured {
				rows = append(rows, row)
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprint(w, "| payload | callers |")
	for _, p := range pairs {
		fmt.Fprintf(w, " %s/%s calls/s |", p[0], p[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "|---:|---:|"+strings.Repeat("---:|", len(pairs)))
	for _, r := range rows {
		fmt.Fprintln(w, r)
	}
	fmt.Fprintln(w)
}
