package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// The tree section: Arbor's request-tree resolution (tree.Resolve of a
// 3-level, 7-node tree) beside a plain Arbor unary call, on one server and
// ONE client connection over loopback TCP, in the same run. The runner is
// in arbor_tree.go; this file only measures and reports, so that it builds
// with -tags noarbor too (the section then says it was skipped).

// treeBar is the bar: resolving the 7-node tree from the memory
// cache costs at most this multiple of a plain unary call, cost being
// (unary calls/s) / (tree-cached calls/s).
const treeBar = 1.3

// The variants of the tree section, in run and print order.
const (
	treeUnary    = "unary"         // arbor.Call2[int](ctx, c, "math_add+none", 1, 2)
	treeCached   = "tree-cached"   // tree.Resolve[int] of the 7 "+mem" nodes, root in the memory cache
	treeUncached = "tree-uncached" // the same tree of "+none" nodes: all 7 run every time
)

var treeVariants = []string{treeUnary, treeCached, treeUncached}

// TreeRunner is an Arbor server with request-tree resolution enabled
// (tree.Enable) and ONE client connection to it, shared by all
// callers of all variants.
type TreeRunner interface {
	// Op returns one call of the variant, which checks the result (the
	// sum) and returns an error on a wrong one; nil for an unknown variant.
	// It is safe for concurrent use.
	Op(variant string) func(ctx context.Context) error
	// Note describes the variant, for the notes under the tables.
	Note(variant string) string
	// Runs returns how many times the function id has run in resolutions
	// so far (server side; plain unary calls are not counted).
	Runs(id string) int64
	// Close closes the client connection, the server and the resolution
	// engine.
	Close() error
}

// startTree starts the TreeRunner; nil when built without Arbor.
var startTree func(ctx context.Context) (TreeRunner, error)

// The function ids of the trees, and what the trees resolve to.
const (
	treeFnNone = "math_add+none"
	treeFnMem  = "math_add+mem"
	treeNodes  = 7  // nodes per tree
	treeSum    = 36 // fn(fn(fn(1,2), fn(3,4)), fn(fn(5,6), fn(7,8)))
	unarySum   = 3  // fn(1, 2)
)

// runTree is the tree section.
func runTree(w io.Writer, cfg config, cs []int) error {
	fmt.Fprintln(w, "## Request tree vs unary")
	fmt.Fprintln(w)
	if startTree == nil {
		fmt.Fprintln(w, "Skipped: built without Arbor (-tags noarbor).")
		fmt.Fprintln(w)
		return nil
	}
	results, notes, err := treeCells(cfg, cs)
	printTreeResults(w, results)
	printTreeRatios(w, results, cs, treeBar)
	printTreeNotes(w, results, notes)
	return err
}

// treeCells starts the runner, makes one checked call of every variant
// (which fills the memory cache for tree-cached), measures every
// concurrency × variant cell, and checks afterwards that the cached tree's
// functions never ran again. It returns what it measured even when a cell
// fails.
func treeCells(cfg config, cs []int) ([]result, []string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := startTree(ctx)
	cancel()
	if err != nil {
		return nil, []string{fmt.Sprintf("arbor: failed to start, section skipped: %v", err)}, fmt.Errorf("tree: start: %w", err)
	}
	defer r.Close()

	var notes []string
	ops := make([]func(context.Context) error, len(treeVariants))
	for i, v := range treeVariants {
		ops[i] = r.Op(v)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := ops[i](ctx) // one checked call before measuring; warms the cache
		cancel()
		if err != nil {
			return nil, notes, fmt.Errorf("tree: %s: first call: %w", v, err)
		}
		notes = append(notes, v+": "+r.Note(v))
	}
	memRuns := r.Runs(treeFnMem)

	var results []result
	for _, c := range cs {
		for i, v := range treeVariants {
			res, err := measureOp(fmt.Sprintf("tree %s c%d", v, c), ops[i], c, cfg.warm, cfg.dur)
			res.system = v
			if err != nil {
				return results, notes, err
			}
			fmt.Fprintf(os.Stderr, "%-13s c%-4d %10s calls/s  p50 %-9s p99 %-9s %6.1f allocs/call\n",
				v, c, fmtRate(res.callsPerSec), fmtDur(res.p50), fmtDur(res.p99), res.allocsPerCall)
			results = append(results, res)
		}
	}

	var cachedCalls uint64
	for _, res := range results {
		if res.system == treeCached {
			cachedCalls += res.calls
		}
	}
	if n := r.Runs(treeFnMem); n != memRuns || memRuns != treeNodes {
		notes = append(notes, fmt.Sprintf("WARNING: %s ran %d times before measuring and %d times in all (want %d and %d): tree-cached was not always served from the memory cache.",
			treeFnMem, memRuns, n, treeNodes, treeNodes))
	} else {
		notes = append(notes, fmt.Sprintf("cache check: %s ran %d times in all, all in the first (warming) resolution; the %d measured tree-cached resolutions (and their warm-ups) were memory-cache hits.",
			treeFnMem, n, cachedCalls))
	}
	return results, notes, nil
}

func printTreeResults(w io.Writer, results []result) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "| variant | concurrency | calls/s | p50 | p99 | allocs/call | B/call |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.1f | %.0f |\n",
			r.system, r.conc, fmtRate(r.callsPerSec), fmtDur(r.p50), fmtDur(r.p99), r.allocsPerCall, r.bytesPerCall)
	}
	fmt.Fprintln(w)
}

// printTreeRatios tables, per concurrency, what a tree costs against the
// unary call ((unary calls/s) / (tree calls/s)) and says whether the
// tree-from-cache cost is within bar in every cell.
func printTreeRatios(w io.Writer, results []result, cs []int, bar float64) {
	type key struct {
		variant string
		conc    int
	}
	byKey := map[key]result{}
	for _, r := range results {
		byKey[key{r.system, r.conc}] = r
	}
	var (
		cells, met int
		worst      float64
		worstAt    int
		rows       []string
	)
	for _, c := range cs {
		u, ok1 := byKey[key{treeUnary, c}]
		t, ok2 := byKey[key{treeCached, c}]
		if !ok1 || !ok2 || t.callsPerSec <= 0 {
			continue
		}
		cost := u.callsPerSec / t.callsPerSec
		cells++
		if cost <= bar {
			met++
		}
		if cost > worst {
			worst, worstAt = cost, c
		}
		uncached := "n/a"
		if n, ok := byKey[key{treeUncached, c}]; ok && n.callsPerSec > 0 {
			uncached = fmt.Sprintf("%.2fx", u.callsPerSec/n.callsPerSec)
		}
		rows = append(rows, fmt.Sprintf("| %d | %.2fx | %s vs %s (%.2fx) | %.1f vs %.1f | %s |",
			c, cost, fmtDur(t.p50), fmtDur(u.p50), float64(t.p50)/float64(max(u.p50, 1)), t.allocsPerCall, u.allocsPerCall, uncached))
	}
	if cells == 0 {
		fmt.Fprintf(w, "Bar (tree-cached cost <= %.2fx unary): not assessed; unary and tree-cached were not both measured.\n\n", bar)
		return
	}
	fmt.Fprintln(w, "| concurrency | tree-cached cost vs unary | tree-cached p50 vs unary p50 | allocs/call tree-cached vs unary | tree-uncached cost vs unary |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	for _, row := range rows {
		fmt.Fprintln(w, row)
	}
	fmt.Fprintln(w)
	verdict := "met"
	if met < cells {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "Bar (tree-from-cache cost = unary calls/s ÷ tree-cached calls/s <= %.2fx in every cell): %s; within it in %d of %d cells, highest %.2fx (concurrency %d).\n\n",
		bar, verdict, met, cells, worst, worstAt)
}

func printTreeNotes(w io.Writer, results []result, notes []string) {
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w, "- one server (tree.Enable, default tree.Config: 1 GiB memory cache) and one client connection over tcp://127.0.0.1, shared by all callers of all variants; every call checks the sum it gets back.")
	fmt.Fprintln(w, "- cost vs unary = unary calls/s ÷ variant calls/s at the same concurrency (1.00x = as cheap as the unary call). The client encodes the whole 7-node tree on every call; the server answers a cached root from the memory cache without building the tree.")
	fmt.Fprintln(w, "- allocs/call and B/call count client and server together (same process); p50/p99 are per-call round-trip latencies seen by the callers.")
	for _, r := range results {
		if r.dropped > 0 {
			fmt.Fprintf(w, "- %s c%d: %d of %d latencies not recorded (sample slices full); percentiles cover the rest.\n",
				r.system, r.conc, r.dropped, r.calls)
		}
	}
	fmt.Fprintln(w)
}
