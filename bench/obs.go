package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The obs section: what observing calls costs. One Arbor echo server and
// client per setup (metrics off or on, tracing off, unsampled or sampled),
// 64-byte echoes from 64 callers on one TCP connection, measured in
// interleaved rounds (every setup once per round, the order rotating) so
// that a noisy machine's drift falls on every setup alike; each ratio is
// the median of the rounds' ratios to "off" in the same round. The
// setups are in arbor_obs.go.

// The bar: metrics on and tracing on but unsampled keep at least
// this share of the calls/s with both off, and cost at most obsBarAllocs
// more allocations per call (client and server together).
const (
	obsBarRate   = 0.9
	obsBarAllocs = 2.0
	obsBarSetup  = "metrics+tracing-unsampled"
	obsConc      = 64
	obsPayload   = 64
)

// obsSetup is one observed echo pair; start returns one checked call and
// a function that closes the pair.
type obsSetup struct {
	name, note string
	start      func(ctx context.Context) (op func(context.Context) error, stop func(), err error)
	// onlyNamed setups (diagnostics, not the bar's) run only when
	// -obs-setups names them.
	onlyNamed bool
}

// obsSetups are the setups in print order, "off" first; nil when built
// without Arbor.
var obsSetups []obsSetup

// pickObsSetups is "off" and the setups only names, or when only is
// empty every setup but the onlyNamed ones.
func pickObsSetups(all []obsSetup, only []string) ([]obsSetup, error) {
	picked := all[:1:1]
	var names []string
	for _, s := range all[1:] {
		names = append(names, s.name)
		if len(only) == 0 && !s.onlyNamed || slices.Contains(only, s.name) {
			picked = append(picked, s)
		}
	}
	for _, n := range only {
		if n != all[0].name && !slices.Contains(names, n) {
			return nil, fmt.Errorf("-obs-setups: unknown setup %q (want some of %s)", n, strings.Join(names, ", "))
		}
	}
	return picked, nil
}

// runObs is the obs section; only, when not empty, names the setups to
// run besides "off".
func runObs(w io.Writer, cfg config, rounds int, only []string) error {
	fmt.Fprintln(w, "## Observability cost")
	fmt.Fprintln(w)
	if len(obsSetups) == 0 {
		fmt.Fprintln(w, "Skipped: built without Arbor (-tags noarbor).")
		fmt.Fprintln(w)
		return nil
	}
	obsSetups, err := pickObsSetups(obsSetups, only)
	if err != nil {
		return err
	}
	ctx := context.Background()
	ops := make([]func(context.Context) error, len(obsSetups))
	for i, s := range obsSetups {
		op, stop, err := s.start(ctx)
		if err != nil {
			return fmt.Errorf("obs %s: %w", s.name, err)
		}
		defer stop()
		ops[i] = op
	}
	per := max(cfg.dur/2, 100*time.Millisecond)
	warm := min(cfg.warm, 100*time.Millisecond)
	res := make([][]result, len(obsSetups)) // [setup][round]
	for r := range rounds {
		for k := range obsSetups {
			i := (k + r) % len(obsSetups)
			label := fmt.Sprintf("obs %s round %d", obsSetups[i].name, r+1)
			got, err := measureOp(label, ops[i], obsConc, warm, per)
			if err != nil {
				return err
			}
			res[i] = append(res[i], got)
		}
	}
	fmt.Fprintf(w, "64 B echo, %d callers, one tcp:// connection, %d interleaved rounds of %v per setup (medians):\n\n", obsConc, rounds, per)
	fmt.Fprintln(w, "| setup | calls/s | vs off | p50 | p99 | CPU µs/call | allocs/call | vs off | B/call |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	median := func(xs []float64) float64 {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		if n := len(xs); n%2 == 1 {
			return xs[n/2]
		} else {
			return (xs[n/2-1] + xs[n/2]) / 2
		}
	}
	field := func(rs []result, f func(result) float64) float64 {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	var failed []string
	offAllocs := field(res[0], func(r result) float64 { return r.allocsPerCall })
	for i, s := range obsSetups {
		var ratios []float64
		for r := range res[i] {
			ratios = append(ratios, res[i][r].callsPerSec/res[0][r].callsPerSec)
		}
		ratio := median(ratios)
		allocs := field(res[i], func(r result) float64 { return r.allocsPerCall })
		fmt.Fprintf(w, "| %s | %s | %.2fx | %s | %s | %.2f | %.1f | %+.1f | %.0f |\n", s.name,
			fmtRate(field(res[i], func(r result) float64 { return r.callsPerSec })), ratio,
			fmtDur(time.Duration(field(res[i], func(r result) float64 { return float64(r.p50) }))),
			fmtDur(time.Duration(field(res[i], func(r result) float64 { return float64(r.p99) }))),
			field(res[i], func(r result) float64 { return r.cpuPerCall }), allocs, allocs-offAllocs,
			field(res[i], func(r result) float64 { return r.bytesPerCall }))
		if s.name == obsBarSetup {
			if ratio < obsBarRate {
				failed = append(failed, fmt.Sprintf("%s keeps %.2fx of off's calls/s (bar %.2fx)", s.name, ratio, obsBarRate))
			}
			if allocs-offAllocs > obsBarAllocs+0.05 {
				failed = append(failed, fmt.Sprintf("%s costs %+.1f allocations per call (bar +%.0f)", s.name, allocs-offAllocs, obsBarAllocs))
			}
		}
	}
	fmt.Fprintln(w)
	for _, s := range obsSetups {
		fmt.Fprintf(w, "- %s: %s\n", s.name, s.note)
	}
	fmt.Fprintln(w)
	ranBar := slices.ContainsFunc(obsSetups, func(s obsSetup) bool { return s.name == obsBarSetup })
	switch {
	case !ranBar:
		fmt.Fprintf(w, "Bar not measured: %s was not run.\n\n", obsBarSetup)
	case len(failed) > 0:
		fmt.Fprintf(w, "Bar (>= %.2fx of off, <= +%.0f allocations) NOT met: %s.\n\n", obsBarRate, obsBarAllocs, strings.Join(failed, "; "))
	default:
		fmt.Fprintf(w, "Bar (%s >= %.2fx of off, <= +%.0f allocations per call) met.\n\n", obsBarSetup, obsBarRate, obsBarAllocs)
	}
	return nil
}
