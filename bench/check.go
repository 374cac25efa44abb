package main

import (
	"fmt"
	"io"
	"time"
)

// The check section (make bench-check): a short run of a few key cells,
// Arbor beside grpc-go and the floor in one process, failing when a ratio
// drops below its recorded bar. A benchmark, not a test: it is not part of
// make test, and a loaded machine can fail it.

// checkBar is one guarded ratio: subject's calls/s over other's in one
// cell, at least min. (The bars are higher; these floors leave
// room for a shared, noisy machine, and catch a real regression.)
type checkBar struct {
	transport string // "" for the unary section's systems
	payload   int
	conc      int
	other     string
	min       float64
}

// checkBars are the guarded cells. Recorded against the full runs in
// BENCHMARKS.md; a change that moves them should move these with it.
var checkBars = []checkBar{
	{payload: 64, conc: 1, other: "grpc", min: 1.8},
	{payload: 64, conc: 64, other: "grpc", min: 5.5},
	{payload: 64, conc: 64, other: "floor", min: 0.85}, // inline calls (2026-12-02): 1.18-1.29x quiet on the EPYC; 0.76-0.83x on the Intel Xeon that replaced it
	{payload: 4 << 10, conc: 16, other: "grpc", min: 2.5},
	{payload: 1 << 20, conc: 4, other: "grpc", min: 1.6},                      // no payload copy (2026-12-02): 1.90x
	{transport: "quic", payload: 64, conc: 16, other: "arbor-tls", min: 0.55}, // 0.73-0.77x (2026-12-02)
}

func runCheck(w io.Writer, cfg config) error {
	fmt.Fprintln(w, "## bench-check: key cells against recorded bars")
	fmt.Fprintln(w)
	dur := min(cfg.dur, time.Second)
	warm := warmupFor(dur)
	var entries []unaryEntry
	for _, n := range []string{"floor", "arbor", "grpc"} {
		s, ok := registry[n]
		if !ok {
			return fmt.Errorf("check: system %s is not built in", n)
		}
		entries = append(entries, unaryEntry{name: s.name, note: s.note, start: s.start})
	}
	var tentries []unaryEntry
	for _, n := range []string{"arbor-tls", "arbor-quic"} {
		t, ok := transportRegistry[n]
		if !ok {
			return fmt.Errorf("check: %s is not built in", n)
		}
		tentries = append(tentries, unaryEntry{name: t.name(), note: t.note, transport: t.transport, start: t.start})
	}
	type key struct {
		sys        string
		size, conc int
	}
	got := map[key]result{}
	var all []result
	for _, b := range checkBars {
		es := entries
		if b.transport != "" {
			es = tentries
		}
		c := config{dur: dur, warm: warm, subject: cfg.subject}
		rs, _, err := unaryCells(c, es, []int{b.payload}, []int{b.conc})
		if err != nil {
			return err
		}
		for _, r := range rs {
			k := key{r.system, r.payload, r.conc}
			if _, seen := got[k]; !seen {
				got[k] = r
				all = append(all, r)
			}
		}
	}
	printResults(w, all)
	fmt.Fprintln(w, "| cell | ratio | bar | verdict |")
	fmt.Fprintln(w, "|---|---:|---:|---|")
	failed := 0
	for _, b := range checkBars {
		subject := "arbor"
		if b.transport != "" {
			subject = "arbor-" + b.transport
		}
		s, ok1 := got[key{subject, b.payload, b.conc}]
		o, ok2 := got[key{b.other, b.payload, b.conc}]
		cell := fmt.Sprintf("%s vs %s, %s, %d callers", subject, b.other, sizeLabel(b.payload), b.conc)
		if !ok1 || !ok2 || o.callsPerSec <= 0 {
			fmt.Fprintf(w, "| %s | n/a | %.2fx | NOT MEASURED |\n", cell, b.min)
			failed++
			continue
		}
		ratio := s.callsPerSec / o.callsPerSec
		verdict := "ok"
		if ratio < b.min {
			verdict = "BELOW BAR"
			failed++
		}
		fmt.Fprintf(w, "| %s | %.2fx | %.2fx | %s |\n", cell, ratio, b.min, verdict)
	}
	fmt.Fprintln(w)
	if failed > 0 {
		return fmt.Errorf("bench-check: %d of %d cells below their bar", failed, len(checkBars))
	}
	fmt.Fprintf(w, "bench-check: all %d cells at or above their bars.\n\n", len(checkBars))
	return nil
}
