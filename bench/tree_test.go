package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestTreeReport checks the tree section's ratio table and bar verdict on
// made-up results (it needs no Arbor).
func TestTreeReport(t *testing.T) {
	cell := func(v string, conc int, rate float64, p50 time.Duration) result {
		return result{system: v, conc: conc, callsPerSec: rate, p50: p50, p99: 2 * p50, allocsPerCall: 10, calls: 100}
	}
	results := []result{
		cell(treeUnary, 1, 1000, 100*time.Microsecond),
		cell(treeCached, 1, 800, 125*time.Microsecond),
		cell(treeUncached, 1, 250, 400*time.Microsecond),
		cell(treeUnary, 16, 4000, time.Millisecond),
		cell(treeCached, 16, 2000, 2*time.Millisecond),
	}
	var buf bytes.Buffer
	printTreeResults(&buf, results)
	printTreeRatios(&buf, results, []int{1, 16}, treeBar)
	out := buf.String()
	for _, want := range []string{
		"| tree-cached | 1 | 800 | 125.0µs | 250.0µs | 10.0 | 0 |",
		"| 1 | 1.25x | 125.0µs vs 100.0µs (1.25x) | 10.0 vs 10.0 | 4.00x |",
		"| 16 | 2.00x | 2.00ms vs 1.00ms (2.00x) | 10.0 vs 10.0 | n/a |",
		"<= 1.30x in every cell): NOT met; within it in 1 of 2 cells, highest 2.00x (concurrency 16)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	buf.Reset()
	printTreeRatios(&buf, results[:3], []int{1}, treeBar)
	if !strings.Contains(buf.String(), "): met; within it in 1 of 1 cells, highest 1.25x (concurrency 1)") {
		t.Errorf("report:\n%s", buf.String())
	}
	buf.Reset()
	printTreeRatios(&buf, results[:1], []int{1}, treeBar)
	if !strings.Contains(buf.String(), "not assessed") {
		t.Errorf("report without tree-cached:\n%s", buf.String())
	}
}
