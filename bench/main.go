// Command bench runs Arbor beside grpc-go, drpc, net/rpc and a hand-written
// TCP echo floor, in one process and one run, on the same payloads and
// concurrency, and prints a markdown table plus Arbor's ratios.
//
//	cd bench && go run .                 # full run, 2s per cell
//	go run . -short                      # CI-sized, ~200ms per cell
//	go run . -d 1s -systems floor,grpc -payloads 64,1KiB -conc 1,16,64,256
//	go run -tags noarbor .               # without Arbor (if it doesn't build)
//
// Each system is a server on 127.0.0.1:0 and ONE client connection shared
// by every concurrent caller. Allocations are counted process-wide, so
// allocs/call and B/call include both client and server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		dur      = flag.Duration("d", 2*time.Second, "measured duration per system×payload×concurrency cell")
		warm     = flag.Duration("warm", 0, "warm-up per cell (default: d/10, clamped to 50ms..500ms)")
		short    = flag.Bool("short", false, "CI-sized run: -d 200ms -warm 50ms")
		systems  = flag.String("systems", "all", "comma-separated systems, or all; known: "+strings.Join(knownSystems(), ","))
		payloads = flag.String("payloads", "64,1KiB", "comma-separated payload sizes (64, 1KiB, 4k, ...)")
		concs    = flag.String("conc", "1,16,64,256", "comma-separated numbers of concurrent callers sharing one connection")
		subject  = flag.String("subject", "arbor", "system whose ratios to grpc and floor are tabled")
	)
	flag.Parse()
	if *short {
		*dur, *warm = 200*time.Millisecond, 50*time.Millisecond
	}
	if *warm == 0 {
		*warm = warmupFor(*dur)
	}
	sys, err := lookupSystems(*systems)
	if err != nil {
		fatalf("%v", err)
	}
	sizes, err := parseSizes(*payloads)
	if err != nil {
		fatalf("-payloads: %v", err)
	}
	cs, err := parseInts(*concs)
	if err != nil {
		fatalf("-conc: %v", err)
	}

	out := os.Stdout
	printMachine(out, *dur, *warm)

	// Start every runner once; each keeps its one connection for the run.
	var (
		runners []Runner
		names   []string
		notes   []string
	)
	for _, s := range sys {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := s.start(ctx)
		cancel()
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: failed to start, skipped: %v", s.name, err))
			fmt.Fprintf(os.Stderr, "%s: failed to start: %v\n", s.name, err)
			continue
		}
		// One checked call before measuring anything.
		p := makePayload(64)
		got, err := r.Call(context.Background(), p)
		if err == nil {
			err = checkEcho(s.name, p, got)
		}
		if err != nil {
			r.Close()
			fatalf("%s: first call: %v", s.name, err)
		}
		runners = append(runners, r)
		names = append(names, s.name)
		notes = append(notes, s.name+": "+s.note)
	}
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()

	var results []result
	var runErr error
cells:
	for _, size := range sizes {
		payload := makePayload(size)
		for _, c := range cs {
			for i, r := range runners {
				res, err := measure(names[i], r, payload, c, *warm, *dur)
				if err != nil {
					runErr = err
					break cells
				}
				fmt.Fprintf(os.Stderr, "%-7s %-6s c%-4d %10s calls/s  p50 %-9s p99 %-9s %6.1f allocs/call\n",
					res.system, sizeLabel(size), c, fmtRate(res.callsPerSec), fmtDur(res.p50), fmtDur(res.p99), res.allocsPerCall)
				results = append(results, res)
			}
		}
	}

	printResults(out, results)
	printRatios(out, results, *subject, sizes, cs)
	printNotes(out, results, notes)
	if runErr != nil {
		for _, r := range runners {
			r.Close()
		}
		fatalf("%v", runErr)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

// parseSizes parses "64,1KiB,4k,1MiB" into byte counts.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := 1
		lower := strings.ToLower(f)
		for _, suf := range []struct {
			s string
			m int
		}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}, {"b", 1}} {
			if strings.HasSuffix(lower, suf.s) {
				lower, mult = strings.TrimSpace(strings.TrimSuffix(lower, suf.s)), suf.m
				break
			}
		}
		n, err := strconv.Atoi(lower)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n*mult)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no sizes")
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no values")
	}
	return out, nil
}
