// Command bench runs Arbor beside grpc-go, drpc, net/rpc and a hand-written
// TCP echo floor, in one process and one run, on the same payloads and
// concurrency, and prints markdown tables plus Arbor's ratios.
//
//	cd bench && go run .                 # full run, 2s per cell: all five sections
//	go run . -short                      # CI-sized, ~200ms per cell
//	go run . -d 1s -systems floor,grpc -payloads 64,1KiB -conc 1,16,64,256
//	go run . -mode stream -d 1s          # bidirectional streaming only
//	go run . -mode transports -d 1s      # unary over tcp, tls, quic, unix only
//	go run . -mode tree -d 1s            # request-tree resolution vs a unary call only
//	go run . -mode pipeline              # a chain of 10 dependent calls vs one, over a 5ms-each-way link
//	go run . -mode proto                 # one .proto: generated Arbor, the gRPC bridge, grpc-go
//	go run . -mode obs                   # what metrics and tracing cost, in interleaved rounds
//	go run -tags noarbor .               # without Arbor (if it doesn't build)
//
// Sections (-mode, comma-separated, default all six in this order):
//
//   - unary: each system is a server on 127.0.0.1:0 and ONE client
//     connection shared by every concurrent caller, doing a unary echo.
//   - stream: bidirectional echo streams, -lanes of them on ONE
//     connection, each sending as fast as flow control allows while a
//     receiver reads the echoes; messages/s and allocations per message.
//   - transports: the unary echo over each transport (Arbor over tcp://,
//     tls://, quic://, unix:; grpc-go over plain TCP and TLS; the floor
//     over TCP and a UDP floor under QUIC), with throwaway certificates
//     made at start.
//   - tree: Arbor resolving a 7-node request tree (tree.Resolve) from the
//     memory cache and uncached, beside a plain Arbor unary call of the
//     same function, on one server and ONE connection; the tree's cost is
//     unary calls/s over tree calls/s (bar: treeBar).
//   - pipeline: over a TCP proxy that delays every chunk by -link-delay
//     each way, the median time of one call and of a chain of -chain
//     dependent calls, Arbor sending the chain as promises, grpc-go as
//     sequential unary calls (bar: pipelineBar, on chain ÷ one).
//   - proto: a unary echo generated from echopb/echo.proto, over Arbor's
//     protocol (the generated client), over Arbor's gRPC bridge called by
//     grpc-go's client, and served natively by grpc-go (bars:
//     protoNativeBar, protoBridgeBar).
//
// Asked for by name: sweep (payload and caller envelope), procs (client
// and server in separate pinned processes), connscale (idle connections
// at scale), obs (metrics and tracing off and on, obsBarRate) and check
// (make bench-check).
//
// Allocations are counted process-wide, so allocs/call, allocs/msg and
// the B/ columns include both client and server.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

// streamBar is the bar for the streaming section: Arbor's
// messages/s at least this multiple of grpc-go's.
const streamBar = 1.5

type config struct {
	dur, warm time.Duration
	subject   string
}

func main() {
	var (
		dur      = flag.Duration("d", 2*time.Second, "measured duration per cell (system × payload × concurrency or lanes)")
		warm     = flag.Duration("warm", 0, "warm-up per cell (default: d/10, clamped to 50ms..500ms)")
		short    = flag.Bool("short", false, "CI-sized run: -d 200ms -warm 50ms")
		mode     = flag.String("mode", "unary,stream,transports,tree,pipeline,proto", "comma-separated sections to run: unary, stream, transports, tree, pipeline, proto, sweep, procs, connscale, obs, tool (needs -arbor-bin), check, or all (the first six)")
		subject  = flag.String("subject", "arbor", "system whose ratios to the others are tabled")
		systems  = flag.String("systems", "all", "unary: comma-separated systems, or all; known: "+strings.Join(knownSystems(), ","))
		payloads = flag.String("payloads", "64,1KiB", "unary: comma-separated payload sizes (64, 1KiB, 4k, ...)")
		concs    = flag.String("conc", "1,16,64,256", "unary: comma-separated numbers of concurrent callers sharing one connection")

		streamSystems  = flag.String("stream-systems", "all", "stream: comma-separated systems, or all; known: "+strings.Join(knownStreamSystems(), ","))
		streamPayloads = flag.String("stream-payloads", "64,1KiB", "stream: comma-separated message sizes")
		lanes          = flag.String("lanes", "1,16", "stream: comma-separated numbers of concurrent bidi streams on one connection")

		transports        = flag.String("transports", "all", "transports: comma-separated system-transport pairs, transports or systems, or all; known: "+strings.Join(knownTransports(), ","))
		transportPayloads = flag.String("transport-payloads", "64", "transports: comma-separated payload sizes")
		transportConc     = flag.String("transport-conc", "1,16", "transports: comma-separated numbers of concurrent callers sharing one connection")

		treeConc = flag.String("tree-conc", "1,16", "tree: comma-separated numbers of concurrent callers sharing one connection")

		protoPayloads = flag.String("proto-payloads", "64", "proto: comma-separated payload sizes")
		protoConc     = flag.String("proto-conc", "1,16,64", "proto: comma-separated numbers of concurrent callers sharing one connection")

		sweepSystems  = flag.String("sweep-systems", "all", "sweep: comma-separated systems, or all")
		sweepPayloads = flag.String("sweep-payloads", "32,512,4KiB,128KiB,1MiB", "sweep: payload sizes")
		sweepConc     = flag.String("sweep-conc", "1,16,64,256,1024", "sweep: numbers of callers")
		sweepConns    = flag.String("sweep-conns", "shared,per-caller", "sweep: shared (one connection for all callers) and/or per-caller (one each)")
		sweepDur      = flag.Duration("sweep-d", 500*time.Millisecond, "sweep: measured duration per cell (the sweep has hundreds of cells)")

		serveName     = flag.String("serve", "", "internal: serve system NAME in this process for a parent bench (procs, connscale)")
		procsSystems  = flag.String("procs-systems", "floor,arbor,grpc", "procs: systems to run with client and server in separate processes")
		procsPayloads = flag.String("procs-payloads", "64,4KiB", "procs: payload sizes")
		procsConc     = flag.String("procs-conc", "1,16,64,256", "procs: numbers of callers sharing one connection")

		scaleSystems = flag.String("scale-systems", "arbor,grpc", "connscale: systems whose servers take the idle connections")
		scaleIdle    = flag.Int("scale-idle", 10000, "connscale: idle client connections to one server")
		scaleActive  = flag.Int("scale-active", 100, "connscale: of them, how many then carry load")

		linkDelay    = flag.Duration("link-delay", 5*time.Millisecond, "pipeline: delay the proxy adds to every chunk, in each direction")
		cpuProfile   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
		obsOnly      = flag.String("obs-setups", "", "obs: comma-separated setups to run (default all but the one-sided metrics-server and metrics-client; off is always run, first)")
		obsRounds    = flag.Int("obs-rounds", 5, "obs, tool: interleaved rounds (obs: each setup measured for -d/2 per round)")
		arborBin     = flag.String("arbor-bin", "", "tool: the arbor binary whose serve and bench commands are measured")
		chainLen     = flag.Int("chain", 10, "pipeline: dependent calls per chain")
		pipelineRuns = flag.Int("pipeline-runs", 25, "pipeline: measured runs (one call and one chain each) per system; -short: 5")
	)
	flag.Parse()
	if *serveName != "" {
		serveChild(*serveName)
		return
	}
	if *short {
		*dur, *warm = 200*time.Millisecond, 50*time.Millisecond
		*pipelineRuns = min(*pipelineRuns, 5)
	}
	if *warm == 0 {
		*warm = warmupFor(*dur)
	}
	sections, err := parseModes(*mode)
	if err != nil {
		fatalf("-mode: %v", err)
	}
	cfg := config{dur: *dur, warm: *warm, subject: *subject}

	// Parse every selected section's flags before running anything.
	var runs []func(io.Writer) error
	for _, sec := range sections {
		switch sec {
		case "unary":
			sys, err := lookupSystems(*systems)
			if err != nil {
				fatalf("-systems: %v", err)
			}
			sizes, cs := mustSizes("-payloads", *payloads), mustInts("-conc", *concs)
			var entries []unaryEntry
			for _, s := range sys {
				entries = append(entries, unaryEntry{name: s.name, note: s.note, start: s.start})
			}
			runs = append(runs, func(w io.Writer) error { return runUnary(w, cfg, entries, sizes, cs) })
		case "stream":
			sys, err := lookupStreamSystems(*streamSystems)
			if err != nil {
				fatalf("-stream-systems: %v", err)
			}
			sizes, ls := mustSizes("-stream-payloads", *streamPayloads), mustInts("-lanes", *lanes)
			runs = append(runs, func(w io.Writer) error { return runStream(w, cfg, sys, sizes, ls) })
		case "transports":
			ts, err := lookupTransports(*transports)
			if err != nil {
				fatalf("-transports: %v", err)
			}
			sizes, cs := mustSizes("-transport-payloads", *transportPayloads), mustInts("-transport-conc", *transportConc)
			runs = append(runs, func(w io.Writer) error { return runTransports(w, cfg, ts, sizes, cs) })
		case "tree":
			cs := mustInts("-tree-conc", *treeConc)
			runs = append(runs, func(w io.Writer) error { return runTree(w, cfg, cs) })
		case "pipeline":
			if *linkDelay < 0 || *chainLen < 1 || *pipelineRuns < 1 {
				fatalf("-link-delay must be >= 0, -chain and -pipeline-runs >= 1")
			}
			pc := pipelineConfig{linkDelay: *linkDelay, chain: *chainLen, runs: *pipelineRuns, warm: 3}
			runs = append(runs, func(w io.Writer) error { return runPipeline(w, pc) })
		case "proto":
			sizes, cs := mustSizes("-proto-payloads", *protoPayloads), mustInts("-proto-conc", *protoConc)
			runs = append(runs, func(w io.Writer) error { return runProto(w, cfg, sizes, cs) })
		case "sweep":
			sys, err := lookupSystems(*sweepSystems)
			if err != nil {
				fatalf("-sweep-systems: %v", err)
			}
			conns, err := parseConns(*sweepConns)
			if err != nil {
				fatalf("-sweep-conns: %v", err)
			}
			var entries []unaryEntry
			for _, s := range sys {
				entries = append(entries, unaryEntry{name: s.name, note: s.note, start: s.start})
			}
			sc := sweepConfig{dur: *sweepDur, warm: warmupFor(*sweepDur), subject: *subject,
				sizes: mustSizes("-sweep-payloads", *sweepPayloads), concs: mustInts("-sweep-conc", *sweepConc), conns: conns}
			runs = append(runs, func(w io.Writer) error { return runSweep(w, sc, entries) })
		case "connscale":
			sys, err := lookupSystems(*scaleSystems)
			if err != nil {
				fatalf("-scale-systems: %v", err)
			}
			scc := scaleConfig{idle: *scaleIdle, active: min(*scaleActive, *scaleIdle), dur: *dur, warm: *warm}
			runs = append(runs, func(w io.Writer) error { return runConnScale(w, scc, sys) })
		case "procs":
			pc := procsConfig{dur: *dur, warm: *warm, subject: *subject, systems: splitList(*procsSystems),
				sizes: mustSizes("-procs-payloads", *procsPayloads), concs: mustInts("-procs-conc", *procsConc)}
			runs = append(runs, func(w io.Writer) error { return runProcs(w, pc) })
		case "obs":
			if *obsRounds < 1 {
				fatalf("-obs-rounds must be >= 1")
			}
			runs = append(runs, func(w io.Writer) error { return runObs(w, cfg, *obsRounds, splitList(*obsOnly)) })
		case "tool":
			if *arborBin == "" {
				fatalf("-mode tool needs -arbor-bin PATH (go build -o /tmp/arbor ./cmd/arbor in the main module)")
			}
			tc := toolConfig{bin: *arborBin, dur: *dur, warm: *warm, rounds: *obsRounds, conc: 64, size: 64}
			runs = append(runs, func(w io.Writer) error { return runTool(w, tc) })
		case "check":
			runs = append(runs, func(w io.Writer) error { return runCheck(w, cfg) })
		}
	}

	raiseFDLimit()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatalf("-cpuprofile: %v", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	out := os.Stdout
	printMachine(out, *dur, *warm)
	for _, run := range runs {
		if err := run(out); err != nil {
			fatalf("%v", err)
		}
	}
}

// parseModes parses -mode into sections in run order (unary, stream,
// transports, tree, pipeline), whatever order they were given in.
func parseModes(s string) ([]string, error) {
	all := []string{"unary", "stream", "transports", "tree", "pipeline", "proto", "sweep", "procs", "connscale", "obs", "tool", "check"}
	defaults := all[:6] // "all": the sections of make bench; sweep, connscale and check are asked for by name
	want := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch f {
		case "":
		case "all":
			for _, m := range defaults {
				want[m] = true
			}
		case "unary", "stream", "transports", "tree", "pipeline", "proto", "sweep", "procs", "connscale", "obs", "tool", "check":
			want[f] = true
		case "protobuf", "generated", "bridge", "grpc-bridge":
			want["proto"] = true
		case "pipelining", "promise", "promises":
			want["pipeline"] = true
		case "trees", "resolve":
			want["tree"] = true
		case "streams", "streaming":
			want["stream"] = true
		case "transport":
			want["transports"] = true
		case "observability", "metrics", "tracing":
			want["obs"] = true
		default:
			return nil, fmt.Errorf("unknown section %q (want unary, stream, transports, tree, pipeline, proto, sweep, procs, connscale, obs, tool, check or all)", f)
		}
	}
	var out []string
	for _, m := range all {
		if want[m] {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no section selected")
	}
	return out, nil
}

// unaryEntry is one Runner to start for a unary-style section.
type unaryEntry struct {
	name, note string
	transport  string // transports section only
	start      func(ctx context.Context) (Runner, error)
}

// runUnary is the unary section.
func runUnary(w io.Writer, cfg config, entries []unaryEntry, sizes, cs []int) error {
	fmt.Fprintln(w, "## Unary echo")
	fmt.Fprintln(w)
	results, notes, err := unaryCells(cfg, entries, sizes, cs)
	printResults(w, results)
	printRatios(w, results, cfg.subject, sizes, cs)
	printNotes(w, results, notes)
	return err
}

// runTransports is the transports section: the unary harness over each
// system × transport.
func runTransports(w io.Writer, cfg config, ts []transportSystem, sizes, cs []int) error {
	fmt.Fprintln(w, "## Unary echo by transport")
	fmt.Fprintln(w)
	var entries []unaryEntry
	for _, t := range ts {
		entries = append(entries, unaryEntry{name: t.name(), note: t.note, transport: t.transport, start: t.start})
	}
	results, notes, err := unaryCells(cfg, entries, sizes, cs)
	printTransportResults(w, results)
	printTransportRatios(w, results, cfg.subject, sizes, cs)
	printNotes(w, results, notes)
	return err
}

// unaryCells starts every entry once (each keeps its one connection for
// the section), checks one call, and measures every payload × concurrency
// cell. It returns what it measured even when a cell fails.
func unaryCells(cfg config, entries []unaryEntry, sizes, cs []int) ([]result, []string, error) {
	var (
		runners []Runner
		started []unaryEntry
		notes   []string
	)
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	for _, e := range entries {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := e.start(ctx)
		cancel()
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: failed to start, skipped: %v", e.name, err))
			fmt.Fprintf(os.Stderr, "%s: failed to start: %v\n", e.name, err)
			continue
		}
		// One checked call before measuring anything.
		p := makePayload(64)
		got, err := r.Call(context.Background(), p)
		if err == nil {
			err = checkEcho(e.name, p, got)
		}
		if err != nil {
			r.Close()
			return nil, notes, fmt.Errorf("%s: first call: %w", e.name, err)
		}
		runners = append(runners, r)
		started = append(started, e)
		notes = append(notes, e.name+": "+e.note)
	}

	var results []result
	for _, size := range sizes {
		payload := makePayload(size)
		for _, c := range cs {
			for i, r := range runners {
				if mp, ok := r.(maxPayloader); ok {
					if n, why := mp.MaxPayload(); size > n {
						if c == cs[0] {
							notes = append(notes, fmt.Sprintf("%s: %s not measured: at most %d bytes (%s)", started[i].name, sizeLabel(size), n, why))
						}
						continue
					}
				}
				res, err := measure(started[i].name, r, payload, c, cfg.warm, cfg.dur)
				if err != nil {
					return results, notes, err
				}
				res.transport = started[i].transport
				fmt.Fprintf(os.Stderr, "%-10s %-6s c%-4d %10s calls/s  p50 %-9s p99 %-9s %6.1f allocs/call\n",
					res.system, sizeLabel(size), c, fmtRate(res.callsPerSec), fmtDur(res.p50), fmtDur(res.p99), res.allocsPerCall)
				results = append(results, res)
			}
		}
	}
	return results, notes, nil
}

// runStream is the bidirectional streaming section.
func runStream(w io.Writer, cfg config, sys []streamSystem, sizes, ls []int) error {
	fmt.Fprintln(w, "## Bidirectional streaming echo")
	fmt.Fprintln(w)
	results, notes, err := streamCells(cfg, sys, sizes, ls)
	printStreamResults(w, results)
	printStreamRatios(w, results, cfg.subject, sizes, ls, streamBar)
	printStreamNotes(w, notes)
	return err
}

func streamCells(cfg config, sys []streamSystem, sizes, ls []int) ([]streamResult, []string, error) {
	var (
		runners []StreamRunner
		names   []string
		notes   []string
	)
	defer func() {
		for _, r := range runners {
			r.Close()
		}
	}()
	for _, s := range sys {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := s.start(ctx)
		if err != nil {
			cancel()
			notes = append(notes, fmt.Sprintf("%s: failed to start, skipped: %v", s.name, err))
			fmt.Fprintf(os.Stderr, "%s: failed to start: %v\n", s.name, err)
			continue
		}
		// One checked stream before measuring anything.
		err = streamRoundTrip(ctx, s.name, r, [][]byte{makePayload(64), makePayload(1024)})
		cancel()
		if err != nil {
			r.Close()
			return nil, notes, fmt.Errorf("first stream: %w", err)
		}
		runners = append(runners, r)
		names = append(names, s.name)
		notes = append(notes, s.name+": "+s.note)
	}

	var results []streamResult
	for _, size := range sizes {
		payload := makePayload(size)
		for _, l := range ls {
			for i, r := range runners {
				res, err := measureStream(names[i], r, payload, l, cfg.warm, cfg.dur)
				if err != nil {
					return results, notes, err
				}
				fmt.Fprintf(os.Stderr, "%-7s stream %-6s %3d lanes %11s msgs/s %6.2f allocs/msg\n",
					res.system, sizeLabel(size), l, fmtRate(res.msgsPerSec), res.allocsPerMsg)
				results = append(results, res)
			}
		}
	}
	return results, notes, nil
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func mustSizes(flagName, s string) []int {
	v, err := parseSizes(s)
	if err != nil {
		fatalf("%s: %v", flagName, err)
	}
	return v
}

func mustInts(flagName, s string) []int {
	v, err := parseInts(s)
	if err != nil {
		fatalf("%s: %v", flagName, err)
	}
	return v
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
