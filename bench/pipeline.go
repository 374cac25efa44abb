package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// The pipeline section: over a link with an added delay (linkProxy, -link-delay
// each way), the time of ONE call of add(a, b) and of a CHAIN of dependent
// calls (add(0,1), then add(previous, 1) -chain-1 times), per system.
// Arbor sends the chain as promises (GoN, each taking the previous
// promise as an argument) and waits on the last: the server resolves it,
// one round trip. grpc-go can only wait for each result before sending
// the next call: one round trip per call. This file measures and reports;
// the runners are in arbor_pipeline.go and grpc_pipeline.go.

// pipelineBar is the bar: Arbor's chain of dependent calls takes
// less than this multiple of its one call.
const pipelineBar = 1.5

// PipelineRunner is a server with add(a, b int) int behind a linkProxy and
// ONE client connection to it through the proxy.
type PipelineRunner interface {
	// One makes one call, add(1, 1), and returns its result.
	One(ctx context.Context) (int, error)
	// Chain makes n dependent calls, add(0, 1) then add(previous, 1), and
	// returns the last result (n when right).
	Chain(ctx context.Context, n int) (int, error)
	// Close closes the client, the proxy and the server.
	Close() error
}

// pipelineSystem describes how to start one PipelineRunner.
type pipelineSystem struct {
	name  string
	chain string // how the chain is sent, for the table
	note  string
	start func(ctx context.Context, linkDelay time.Duration) (PipelineRunner, error)
}

// pipelineOrder is the order the pipeline systems are run and printed in.
var pipelineOrder = []string{"arbor", "capnp", "grpc"}

var pipelineRegistry = map[string]pipelineSystem{}

func registerPipeline(s pipelineSystem) {
	if _, dup := pipelineRegistry[s.name]; dup {
		panic("bench: duplicate pipeline system " + s.name)
	}
	pipelineRegistry[s.name] = s
}

// pipelineConfig is the section's flags.
type pipelineConfig struct {
	linkDelay time.Duration // added each way
	chain     int           // calls per chain
	runs      int           // measured runs (one call and one chain each)
	warm      int           // unmeasured runs first
}

// pipelineResult is one system's measurements, sorted.
type pipelineResult struct {
	system     string
	how        string // how the chain is made
	one, chain []time.Duration
}

func median(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if n := len(sorted); n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[len(sorted)/2]
}

func (r pipelineResult) ratio() float64 {
	one := median(r.one)
	if one <= 0 {
		return 0
	}
	return float64(median(r.chain)) / float64(one)
}

// runPipeline is the pipeline section.
func runPipeline(w io.Writer, pc pipelineConfig) error {
	fmt.Fprintf(w, "## Pipelining: a chain of %d dependent calls vs one call, %v added each way\n\n", pc.chain, pc.linkDelay)
	results, notes, err := pipelineCells(pc)
	printPipelineResults(w, results, pc)
	printPipelineBar(w, results, pc.chain, pipelineBar)
	printPipelineNotes(w, notes, pc)
	return err
}

// pipelineCells starts each system in turn, checks one call and one chain,
// and measures runs × (one call, one chain), alternating. It returns what
// it measured even when a system fails.
func pipelineCells(pc pipelineConfig) ([]pipelineResult, []string, error) {
	var (
		results []pipelineResult
		notes   []string
	)
	for _, name := range pipelineOrder {
		s, ok := pipelineRegistry[name]
		if !ok {
			notes = append(notes, name+": skipped (built without it, -tags noarbor)")
			continue
		}
		res, err := measurePipeline(s, pc)
		if err != nil {
			return results, notes, fmt.Errorf("pipeline: %s: %w", name, err)
		}
		fmt.Fprintf(os.Stderr, "%-6s pipeline one %-9s chain of %d %-9s %.2fx\n",
			name, fmtDur(median(res.one)), pc.chain, fmtDur(median(res.chain)), res.ratio())
		results = append(results, res)
		notes = append(notes, name+": "+s.note)
	}
	return results, notes, nil
}

func measurePipeline(s pipelineSystem, pc pipelineConfig) (pipelineResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r, err := s.start(ctx, pc.linkDelay)
	cancel()
	if err != nil {
		return pipelineResult{}, fmt.Errorf("start: %w", err)
	}
	defer r.Close()
	res := pipelineResult{system: s.name, how: s.chain}
	for i := range pc.warm + pc.runs {
		one, err := timePipelineOp(func(ctx context.Context) (int, error) { return r.One(ctx) }, 2)
		if err != nil {
			return res, fmt.Errorf("one call: %w", err)
		}
		chain, err := timePipelineOp(func(ctx context.Context) (int, error) { return r.Chain(ctx, pc.chain) }, pc.chain)
		if err != nil {
			return res, fmt.Errorf("chain of %d: %w", pc.chain, err)
		}
		if i >= pc.warm {
			res.one = append(res.one, one)
			res.chain = append(res.chain, chain)
		}
	}
	slices.Sort(res.one)
	slices.Sort(res.chain)
	return res, nil
}

// timePipelineOp times op and checks that it returned want.
func timePipelineOp(op func(context.Context) (int, error), want int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	got, err := op(ctx)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if got != want {
		return 0, fmt.Errorf("got %d, want %d", got, want)
	}
	return took, nil
}

func printPipelineResults(w io.Writer, results []pipelineResult, pc pipelineConfig) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(w, "| system | chain of %d sent as | one call (median) | chain of %d (median) | chain ÷ one | one call min..max | chain min..max |\n", pc.chain, pc.chain)
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|")
	for _, r := range results {
		if len(r.one) == 0 || len(r.chain) == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2fx | %s..%s | %s..%s |\n",
			r.system, r.how, fmtDur(median(r.one)), fmtDur(median(r.chain)), r.ratio(),
			fmtDur(r.one[0]), fmtDur(r.one[len(r.one)-1]), fmtDur(r.chain[0]), fmtDur(r.chain[len(r.chain)-1]))
	}
	fmt.Fprintln(w)
}

// printPipelineBar says whether Arbor's chain ÷ one is under bar, with the
// other systems' ratios beside it.
func printPipelineBar(w io.Writer, results []pipelineResult, chain int, bar float64) {
	var arbor *pipelineResult
	var others []string
	for i, r := range results {
		if len(r.one) == 0 || len(r.chain) == 0 {
			continue
		}
		if r.system == "arbor" {
			arbor = &results[i]
		} else {
			others = append(others, fmt.Sprintf("%s %.2fx", r.system, r.ratio()))
		}
	}
	if arbor == nil {
		fmt.Fprintf(w, "Bar (Arbor's chain of %d < %.1fx its one call): not assessed; Arbor was not measured.\n\n", chain, bar)
		return
	}
	verdict := "met"
	if arbor.ratio() >= bar {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "Bar (Arbor's chain of %d < %.1fx its one call, medians): %s, %.2fx", chain, bar, verdict, arbor.ratio())
	if len(others) > 0 {
		fmt.Fprintf(w, " (")
		for i, o := range others {
			if i > 0 {
				fmt.Fprint(w, ", ")
			}
			fmt.Fprint(w, o)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprint(w, ".\n\n")
}

func printPipelineNotes(w io.Writer, notes []string, pc pipelineConfig) {
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintf(w, "- link: each system's one client connection goes through a TCP proxy on loopback that holds every chunk for %v before passing it on, in each direction, so a round trip takes at least %v.\n",
		pc.linkDelay, 2*pc.linkDelay)
	fmt.Fprintf(w, "- %d measured runs per system after %d warm-up runs; each run times one call, add(1, 1), then one chain, add(0, 1) followed by %d × add(previous, 1); every result is checked (2 and %d).\n",
		pc.runs, pc.warm, pc.chain-1, pc.chain)
	fmt.Fprintln(w, "- chain ÷ one = median chain time ÷ median one-call time: about 1 when the chain costs one round trip, about the chain length when every call costs its own.")
	fmt.Fprintln(w)
}
