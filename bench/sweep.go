package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// The sweep section: the envelope in the shapes of fRPC's and
// kitex-benchmark's tables. Every system × payload × callers, over one
// connection shared by all callers and over one connection per caller.

// sweepInFlightLimit bounds payload × callers: above it a cell would keep
// gigabytes in flight (each echo holds several copies), and is skipped
// with a note.
const sweepInFlightLimit = 256 << 20

type sweepConfig struct {
	dur, warm time.Duration
	subject   string
	sizes     []int
	concs     []int
	conns     []string // "shared", "per-caller"
}

// runSweep is the sweep section.
func runSweep(w io.Writer, sc sweepConfig, entries []unaryEntry) error {
	fmt.Fprintln(w, "## Envelope sweep: payload × callers × connections")
	fmt.Fprintln(w)
	results, notes, err := sweepCells(sc, entries)
	printSweep(w, results)
	printSweepRatios(w, results, sc)
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintf(w, "- conns: 1 = one client connection shared by every caller; N = one connection per caller (dialed before the cell, closed after it).\n")
	fmt.Fprintf(w, "- MiB/s counts payload bytes echoed (one way); B/call ÷ payload is the bytes allocated per call (client and server, one process) over the payload size: 2.0 means two payload-sized allocations per round trip in all.\n")
	fmt.Fprintf(w, "- cells with payload × callers over %d MiB are skipped (they would keep gigabytes in flight on a 24 GiB machine).\n", sweepInFlightLimit>>20)
	fmt.Fprintln(w)
	return err
}

func sweepCells(sc sweepConfig, entries []unaryEntry) ([]result, []string, error) {
	var notes []string
	var results []result
	for _, e := range entries {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := e.start(ctx)
		cancel()
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: failed to start, skipped: %v", e.name, err))
			continue
		}
		notes = append(notes, e.name+": "+e.note)
		_, canDial := r.(Dialer)
		if !canDial && contains(sc.conns, "per-caller") {
			notes = append(notes, e.name+": one connection per caller not measured (its runner cannot dial more connections)")
		}
		for _, size := range sc.sizes {
			payload := makePayload(size)
			for _, c := range sc.concs {
				if size*c > sweepInFlightLimit {
					continue
				}
				for _, mode := range sc.conns {
					rs := []Runner{r}
					if mode == "per-caller" && c > 1 {
						if !canDial {
							continue
						}
						var err error
						if rs, err = dialN(r.(Dialer), c); err != nil {
							notes = append(notes, fmt.Sprintf("%s %s c%d per-caller: dial failed, skipped: %v", e.name, sizeLabel(size), c, err))
							continue
						}
					} else if mode == "per-caller" {
						continue // one caller: the same cell as shared
					}
					res, err := measureOn(e.name, rs, payload, c, sc.warm, sc.dur)
					if len(rs) > 1 {
						for _, x := range rs {
							x.Close()
						}
					}
					if err != nil {
						r.Close()
						return results, notes, err
					}
					fmt.Fprintf(os.Stderr, "sweep %-8s %-7s c%-5d conns %-5d %10s calls/s  p99 %-9s %7.1f µs CPU  %5.2f B/payload\n",
						res.system, sizeLabel(size), c, res.conns, fmtRate(res.callsPerSec), fmtDur(res.p99), res.cpuPerCall, res.bytesPerCall/float64(max(size, 1)))
					results = append(results, res)
				}
			}
		}
		r.Close()
	}
	return results, notes, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// dialN opens n connections, closing them all if one fails.
func dialN(d Dialer, n int) ([]Runner, error) {
	out := make([]Runner, 0, n)
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := d.Dial(ctx)
		cancel()
		if err != nil {
			for _, x := range out {
				x.Close()
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func printSweep(w io.Writer, results []result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "| system | payload | callers | conns | calls/s | MiB/s | p50 | p99 | p99.9 | CPU µs/call | allocs/call | B/call | B/call ÷ payload |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %s | %.1f | %s | %s | %s | %.1f | %.1f | %.0f | %.2f |\n",
			r.system, sizeLabel(r.payload), r.conc, r.conns, fmtRate(r.callsPerSec), r.callsPerSec*float64(r.payload)/(1<<20),
			fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.p999), r.cpuPerCall, r.allocsPerCall, r.bytesPerCall, r.bytesPerCall/float64(max(r.payload, 1)))
	}
	fmt.Fprintln(w)
}

// printSweepRatios tables, per cell, the subject against grpc and the
// floor (calls/s, CPU per call, p99), and flags a p99 over twice the
// floor's.
func printSweepRatios(w io.Writer, results []result, sc sweepConfig) {
	type key struct {
		sys               string
		size, conc, conns int
	}
	by := map[key]result{}
	for _, r := range results {
		by[key{r.system, r.payload, r.conc, r.conns}] = r
	}
	fmt.Fprintf(w, "| payload | callers | conns | %[1]s/grpc calls/s | %[1]s/floor calls/s | best other peer | %[1]s/best | CPU µs/call %[1]s vs grpc vs floor | p99 %[1]s vs floor |\n", sc.subject)
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---|---:|---:|---|")
	for _, r := range results {
		if r.system != sc.subject {
			continue
		}
		k := key{"grpc", r.payload, r.conc, r.conns}
		ratio := func(sys string) string {
			k.sys = sys
			if o, ok := by[k]; ok && o.callsPerSec > 0 {
				return fmt.Sprintf("%.2fx", r.callsPerSec/o.callsPerSec)
			}
			return "n/a"
		}
		best, bestRate := "n/a", 0.0
		for _, o := range results {
			if o.system != sc.subject && o.system != "floor" && o.payload == r.payload && o.conc == r.conc && o.conns == r.conns && o.callsPerSec > bestRate {
				best, bestRate = o.system, o.callsPerSec
			}
		}
		vsBest := "n/a"
		if bestRate > 0 {
			vsBest = fmt.Sprintf("%.2fx", r.callsPerSec/bestRate)
		}
		cpu := fmt.Sprintf("%.1f", r.cpuPerCall)
		for _, sys := range []string{"grpc", "floor"} {
			k.sys = sys
			if o, ok := by[k]; ok {
				cpu += fmt.Sprintf(" vs %.1f", o.cpuPerCall)
			} else {
				cpu += " vs n/a"
			}
		}
		tail := "n/a"
		k.sys = "floor"
		if f, ok := by[k]; ok && f.p99 > 0 {
			x := float64(r.p99) / float64(f.p99)
			tail = fmt.Sprintf("%s vs %s (%.2fx)", fmtDur(r.p99), fmtDur(f.p99), x)
			if x > 2 {
				tail += " **>2×**"
			}
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", sizeLabel(r.payload), r.conc, r.conns,
			ratio("grpc"), ratio("floor"), best, vsBest, cpu, tail)
	}
	fmt.Fprintln(w)
}

// parseConns parses -sweep-conns.
func parseConns(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "shared", "1", "one":
			out = append(out, "shared")
		case "per-caller", "each", "n":
			out = append(out, "per-caller")
		default:
			return nil, fmt.Errorf("unknown connection mode %q (want shared, per-caller)", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no connection modes")
	}
	return out, nil
}
