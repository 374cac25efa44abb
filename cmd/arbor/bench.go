package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/value"
)

const benchAbout = `Calls FUNCTION on the server at ADDR as fast as -c callers can (or at
--rate calls/s in all), for -n calls or -d duration, and reports calls/s,
latency percentiles (p50, p90, p99, p99.9), a latency histogram and the
errors by code. Each ARG is one JSON value, as for 'arbor call'.

  arbor bench -c 64 -d 10s tcp://127.0.0.1:7450 echo '"0123456789abcdef"'

Callers share --connections connections (default 1) round robin. With
--cluster, ADDR is a comma-separated list of the cluster's nodes, each
dialed with --connections connections, and the callers are spread over
all of them. A progress bar is drawn when stderr is a terminal, one line a
second otherwise. --out FILE writes the report as JSON too.

Exits 0 when every call succeeded, 1 when some failed.
`

// benchConfig is what the flags ask for.
type benchConfig struct {
	callers, connections int
	calls                int64
	duration, timeout    time.Duration
	rate                 float64
	cluster              bool
	out                  string
	addrs                []string
	function             string
	args                 []byte // the encoded argument array
	nargs                int
	warmup               time.Duration
}

// BenchReport is the result of a run, as --out writes it.
type BenchReport struct {
	Function    string           `json:"function"`
	Targets     []string         `json:"targets"`
	Callers     int              `json:"callers"`
	Connections int              `json:"connections"` // in all
	Rate        float64          `json:"rate,omitempty"`
	Calls       uint64           `json:"calls"`
	Errors      uint64           `json:"errors"`
	ByCode      map[string]int64 `json:"by_code"`
	Seconds     float64          `json:"seconds"`
	CallsPerSec float64          `json:"calls_per_sec"`
	Latency     struct {
		Min, Mean, P50, P90, P99, P999, Max float64 // seconds
	} `json:"latency"`
	Histogram []BenchBucket `json:"histogram"`
	// FirstErrors keeps a few error messages, one per code, as seen.
	FirstErrors map[string]string `json:"first_errors,omitempty"`
}

// BenchBucket is one bar of the latency histogram.
type BenchBucket struct {
	UpTo  float64 `json:"up_to"` // seconds; the last bar holds everything slower
	Count uint64  `json:"count"`
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "[flags] ADDR FUNCTION [ARG ...]", benchAbout, stderr)
	var cfg benchConfig
	var tf tlsFlags
	tf.register(fs, true)
	fs.IntVar(&cfg.callers, "c", 64, "concurrent `callers`")
	fs.Int64Var(&cfg.calls, "n", 0, "stop after `n` calls in all (default 10000 unless -d is given)")
	fs.DurationVar(&cfg.duration, "d", 0, "stop after `duration` (instead of -n)")
	fs.IntVar(&cfg.connections, "connections", 1, "connections per server `n`, shared by the callers")
	fs.Float64Var(&cfg.rate, "rate", 0, "at most `r` calls per second in all (0: as fast as possible)")
	fs.BoolVar(&cfg.cluster, "cluster", false, "ADDR is a comma-separated list of nodes: spread the calls over all of them")
	fs.StringVar(&cfg.out, "out", "", "also write the report as JSON to `file`")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "give up on the dial, the first call, and the calls still running `duration` after the run's end")
	fs.DurationVar(&cfg.warmup, "warmup", 0, "call for `duration` first without counting (pools, connections)")
	if code, ok := parseDialer(fs, args, stderr, &tf); !ok {
		return code
	}
	if fs.NArg() < 2 {
		return usageError(fs, stderr, "want ADDR and FUNCTION, got %d argument(s)", fs.NArg())
	}
	switch {
	case cfg.callers < 1 || cfg.callers > 100000:
		return usageError(fs, stderr, "-c must be between 1 and 100000, got %d", cfg.callers)
	case cfg.connections < 1 || cfg.connections > 1000:
		return usageError(fs, stderr, "--connections must be between 1 and 1000, got %d", cfg.connections)
	case cfg.calls < 0 || cfg.duration < 0 || cfg.rate < 0:
		return usageError(fs, stderr, "-n, -d and --rate cannot be negative")
	case math.IsNaN(cfg.rate) || math.IsInf(cfg.rate, 0):
		return usageError(fs, stderr, "--rate must be a number of calls per second, got %v", cfg.rate)
	case cfg.timeout <= 0:
		return usageError(fs, stderr, "--timeout must be positive, got %v", cfg.timeout)
	case cfg.warmup < 0:
		return usageError(fs, stderr, "--warmup cannot be negative, got %v", cfg.warmup)
	case cfg.calls > 0 && cfg.duration > 0:
		return usageError(fs, stderr, "give -n or -d, not both")
	}
	if cfg.calls == 0 && cfg.duration == 0 {
		cfg.calls = 10000
	}
	cfg.addrs = []string{fs.Arg(0)}
	if cfg.cluster {
		cfg.addrs = nil
		for _, a := range strings.Split(fs.Arg(0), ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.addrs = append(cfg.addrs, a)
			}
		}
		if len(cfg.addrs) == 0 {
			return usageError(fs, stderr, "--cluster: no address in %q", fs.Arg(0))
		}
	} else if strings.Contains(fs.Arg(0), ",") {
		return usageError(fs, stderr, "ADDR %q lists several addresses: add --cluster to spread the calls over them", fs.Arg(0))
	}
	cfg.function = fs.Arg(1)
	cfg.nargs = fs.NArg() - 2
	cfg.args = value.AppendArrayHeader(nil, cfg.nargs)
	for i, a := range fs.Args()[2:] {
		v, err := parseArg(a)
		if err != nil {
			return usageError(fs, stderr, "argument %d is not a JSON value: %v (a string needs JSON quotes: '\"text\"')", i, err)
		}
		if cfg.args, err = value.AppendAny(cfg.args, v); err != nil {
			return usageError(fs, stderr, "argument %d: %v", i, err)
		}
	}
	rep, err := runBench(ctx, cfg, tf, stderr)
	if err != nil {
		return printError(stderr, err)
	}
	printReport(stdout, rep)
	if cfg.out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(cfg.out, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "error: --out: %v\n", err)
			return exitFail
		}
	}
	if rep.Errors > 0 {
		return exitFail
	}
	return exitOK
}

// encodedArg is an argument already in msgpack; skipped a result that is
// read past, not decoded. Both are pointers that encode and decode
// themselves, which the value package calls through their methods, no
// reflection and no allocation (a value type implementing only one of the
// two goes through reflection, and boxing the argument for its
// AppendMsgpack costs allocations per call). With them the typed fast
// path (no Request, no copies) carries the calls, as it does for a
// program's own calls.
type encodedArg struct{ b []byte }

func (a *encodedArg) AppendMsgpack(b []byte, _ any) ([]byte, error) { return append(b, a.b...), nil }

// ReadMsgpack makes encodedArg self-coding; arguments are never decoded.
func (a *encodedArg) ReadMsgpack(r *value.Reader, _ any) error {
	raw, err := r.Skip()
	a.b = append(a.b[:0], raw...)
	return err
}

type skipped struct{}

// AppendMsgpack makes skipped self-coding; results are never encoded.
func (*skipped) AppendMsgpack(b []byte, _ any) ([]byte, error) { return value.AppendNil(b), nil }

func (*skipped) ReadMsgpack(r *value.Reader, _ any) error { _, err := r.Skip(); return err }

// caller makes one call of the benchmark through c.
type caller func(ctx context.Context, c *arbor.Client) error

// makeCaller picks the cheapest way to send cfg's call.
func makeCaller(cfg benchConfig) (caller, error) {
	fn := cfg.function
	if cfg.nargs > 3 {
		return func(ctx context.Context, c *arbor.Client) error {
			_, err := arbor.CallRaw(ctx, c, fn, cfg.args)
			return err
		}, nil
	}
	r := value.NewReader(cfg.args)
	if _, err := r.ReadArrayHeader(); err != nil {
		return nil, err
	}
	parts := make([]*encodedArg, cfg.nargs)
	for i := range parts {
		raw, err := r.Skip()
		if err != nil {
			return nil, err
		}
		parts[i] = &encodedArg{raw}
	}
	switch cfg.nargs {
	case 0:
		return func(ctx context.Context, c *arbor.Client) error {
			_, err := arbor.Call0[*skipped](ctx, c, fn)
			return err
		}, nil
	case 1:
		return func(ctx context.Context, c *arbor.Client) error {
			_, err := arbor.Call1[*skipped](ctx, c, fn, parts[0])
			return err
		}, nil
	case 2:
		return func(ctx context.Context, c *arbor.Client) error {
			_, err := arbor.Call2[*skipped](ctx, c, fn, parts[0], parts[1])
			return err
		}, nil
	}
	return func(ctx context.Context, c *arbor.Client) error {
		_, err := arbor.Call3[*skipped](ctx, c, fn, parts[0], parts[1], parts[2])
		return err
	}, nil
}

// benchWorker is one caller's tally, touched by that caller alone (but
// done, which the progress display reads): no counter is shared between
// callers, so the tool costs the calls it measures as little as it can.
type benchWorker struct {
	hist   latencyHist
	codes  [int(arbor.Unauthenticated) + 1]int64
	odd    map[arbor.Code]int64 // codes past Unauthenticated
	errors map[arbor.Code]string
	done   atomic.Int64
	_      [56]byte // done on a cache line of its own
}

func runBench(ctx context.Context, cfg benchConfig, tf tlsFlags, stderr io.Writer) (*BenchReport, error) {
	call, err := makeCaller(cfg)
	if err != nil {
		return nil, err
	}
	var (
		clients   []*arbor.Client
		closeOnce sync.Once
	)
	// closeClients closes the connections, which also gives up on the
	// calls still running on them.
	closeClients := func() {
		closeOnce.Do(func() {
			for _, c := range clients {
				c.Close()
			}
		})
	}
	defer closeClients()
	for _, addr := range cfg.addrs {
		for range cfg.connections {
			dctx, cancel := context.WithTimeout(ctx, cfg.timeout)
			c, err := arbor.Dial(dctx, addr, arbor.WithTransport(tf.config()))
			cancel()
			if err != nil {
				return nil, err
			}
			clients = append(clients, c)
		}
	}
	// One call first: a wrong function or wrong arguments stop here,
	// clearly; other failures are what the run measures.
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	err = call(cctx, clients[0])
	cancel()
	if c := arbor.CodeOf(err); c == arbor.Unimplemented || c == arbor.InvalidArgument || c == arbor.Unavailable {
		msg := err.Error()
		var ae *arbor.Error
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		return nil, &arbor.Error{Code: c, Message: fmt.Sprintf("first call of %s failed, not benchmarking: %s", cfg.function, msg), Cause: err}
	}
	if cfg.warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, cfg.warmup)
		var wg sync.WaitGroup
		for i := range cfg.callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for wctx.Err() == nil {
					call(wctx, clients[i%len(clients)])
				}
			}()
		}
		wg.Wait()
		cancel()
	}

	var (
		issued  atomic.Int64
		stopped atomic.Bool // the run is over: cheaper to read per call than runCtx.Err
		start   = time.Now()
		runCtx  = ctx
		stop    context.CancelFunc
	)
	if cfg.duration > 0 {
		runCtx, stop = context.WithTimeout(ctx, cfg.duration)
	} else {
		runCtx, stop = context.WithCancel(ctx)
	}
	defer stop()
	context.AfterFunc(runCtx, func() { stopped.Store(true) })
	// Calls carry no deadline and no cancellation of their own: a timer
	// per call would cost more than the call, and a context that can be
	// done costs each call a select on it (one that never is lets the
	// connection wait on the answer alone), which the calls of bench/
	// and of most programs do not pay. The calls still running
	// cfg.timeout after the end of the run, or any when ctx ends, are
	// given up by closing the connections.
	callCtx := context.WithoutCancel(ctx)
	var gaveUp atomic.Bool // the connections were closed on the calls still running
	giveUp := func() { gaveUp.Store(true); closeClients() }
	allDone := make(chan struct{}) // every caller has returned
	defer close(allDone)
	// With -n the run ends when its last call has gone out.
	var began atomic.Int64
	allBegun := make(chan struct{})
	go func() {
		select {
		case <-runCtx.Done():
		case <-allBegun:
		case <-allDone:
			return
		}
		t := time.NewTimer(cfg.timeout)
		defer t.Stop()
		select {
		case <-t.C:
			giveUp()
		case <-ctx.Done():
			giveUp()
		case <-allDone:
		}
	}()
	// take hands out the next call: false when the run is over. With a
	// rate, call i waits until start + i/rate.
	counted := cfg.calls > 0 || cfg.rate > 0
	take := func() bool {
		if !counted { // -d without --rate: nothing shared to count
			return !stopped.Load()
		}
		i := issued.Add(1) - 1
		if cfg.calls > 0 && i >= cfg.calls {
			return false
		}
		if cfg.rate > 0 {
			// Past math.MaxInt64 ns the conversion would wrap around
			// into the past: such a call is never due.
			off := min(float64(i)/cfg.rate*float64(time.Second), math.MaxInt64/2)
			if d := time.Until(start.Add(time.Duration(off))); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-runCtx.Done():
					t.Stop()
					return false
				}
			}
		}
		return !stopped.Load()
	}
	workers := make([]*benchWorker, cfg.callers)
	var wg sync.WaitGroup
	for i := range workers {
		w := &benchWorker{errors: map[arbor.Code]string{}}
		workers[i] = w
		c := clients[i%len(clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for take() {
				if cfg.calls > 0 && began.Add(1) == cfg.calls {
					close(allBegun)
				}
				t0 := time.Now()
				err := call(callCtx, c)
				d := time.Since(t0)
				if err != nil && gaveUp.Load() {
					// Say why, rather than the closed connection's
					// Unavailable.
					err = &arbor.Error{Code: arbor.Canceled, Message: fmt.Sprintf("given up: still running %v after the end of the run (--timeout)", cfg.timeout), Cause: err}
				}
				w.hist.record(d)
				if err == nil {
					w.codes[arbor.OK]++
				} else {
					code := arbor.CodeOf(err)
					if int(code) < len(w.codes) {
						w.codes[code]++
					} else {
						if w.odd == nil {
							w.odd = map[arbor.Code]int64{}
						}
						w.odd[code]++
					}
					if _, seen := w.errors[code]; !seen && len(w.errors) < 32 {
						w.errors[code] = err.Error()
					}
				}
				w.done.Add(1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	progress(cfg, start, func() int64 {
		var n int64
		for _, w := range workers {
			n += w.done.Load()
		}
		return n
	}, finished, stderr)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	rep := &BenchReport{Function: cfg.function, Targets: cfg.addrs, Callers: cfg.callers, Connections: len(clients),
		Rate: cfg.rate, ByCode: map[string]int64{}, FirstErrors: map[string]string{}, Seconds: elapsed.Seconds()}
	var h latencyHist
	for _, w := range workers {
		h.merge(&w.hist)
		for c, n := range w.codes {
			if n > 0 {
				rep.ByCode[arbor.Code(c).String()] += n
				if arbor.Code(c) != arbor.OK {
					rep.Errors += uint64(n)
				}
			}
		}
		for code, n := range w.odd {
			rep.ByCode[code.String()] += n
			rep.Errors += uint64(n)
		}
		for code, msg := range w.errors {
			if _, ok := rep.FirstErrors[code.String()]; !ok {
				rep.FirstErrors[code.String()] = truncateMsg(msg, 300)
			}
		}
	}
	rep.Calls = h.n
	if elapsed > 0 {
		rep.CallsPerSec = float64(h.n) / elapsed.Seconds()
	}
	l := &rep.Latency
	l.Min, l.Mean, l.Max = h.min.Seconds(), h.mean().Seconds(), h.max.Seconds()
	l.P50, l.P90, l.P99, l.P999 = h.quantile(0.5).Seconds(), h.quantile(0.9).Seconds(), h.quantile(0.99).Seconds(), h.quantile(0.999).Seconds()
	rep.Histogram = histogramBars(&h, 10)
	return rep, nil
}

func truncateMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// histogramBars cuts [min, p99.9] into n bars of about equal width, and
// one more for anything slower. Each bar ends where a bucket of h ends,
// so that it holds exactly the calls no slower than its up_to.
func histogramBars(h *latencyHist, n int) []BenchBucket {
	if h.n == 0 {
		return nil
	}
	lo, hi := h.min, h.quantile(0.999)
	if hi <= lo {
		hi = lo + 1
	}
	step := (hi - lo) / time.Duration(n)
	step = max(step, 1)
	var out []BenchBucket
	var prev uint64
	for i := 1; i <= n; i++ {
		end := min(histIndex(lo+step*time.Duration(i))+1, len(h.counts)) // the buckets below end
		c := h.countBuckets(end)
		upTo := min(histValue(end)-1, h.max)
		out = append(out, BenchBucket{UpTo: upTo.Seconds(), Count: c - prev})
		prev = c
	}
	if rest := h.n - prev; rest > 0 {
		out = append(out, BenchBucket{UpTo: h.max.Seconds(), Count: rest})
	}
	return out
}

// progress shows the run's progress until finished: a bar on a terminal,
// one plain line a second otherwise, and one when the run ends.
func progress(cfg benchConfig, start time.Time, done func() int64, finished <-chan struct{}, w io.Writer) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	if isTerminal(w) {
		total := cfg.calls
		desc := "calls"
		if cfg.duration > 0 {
			total, desc = int64(cfg.duration/time.Millisecond), "ms"
		}
		bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(40))
		fast := time.NewTicker(100 * time.Millisecond)
		defer fast.Stop()
		for {
			select {
			case <-finished:
				bar.Finish()
				return
			case <-fast.C:
				if cfg.duration > 0 {
					bar.Set64(min(int64(time.Since(start)/time.Millisecond), total))
				} else {
					bar.Set64(done())
				}
			}
		}
	}
	var last int64
	lastAt := start
	line := func(now time.Time) {
		n := done()
		rate := float64(n-last) / max(now.Sub(lastAt).Seconds(), 1e-9)
		fmt.Fprintf(w, "%5.1fs  %d calls  %.0f calls/s\n", now.Sub(start).Seconds(), n, rate)
		last, lastAt = n, now
	}
	for {
		select {
		case <-finished:
			// The last stretch gets its line too: a run shorter than a
			// tick, or one ending between ticks, still shows its progress.
			if n := done(); n != last || lastAt == start {
				line(time.Now())
			}
			return
		case now := <-tick.C:
			line(now)
		}
	}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func printReport(w io.Writer, r *BenchReport) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSummary:\n")
	fmt.Fprintf(&b, "  function:    %s on %s\n", r.Function, strings.Join(r.Targets, ", "))
	fmt.Fprintf(&b, "  callers:     %d over %d connection(s)\n", r.Callers, r.Connections)
	if r.Rate > 0 {
		fmt.Fprintf(&b, "  rate limit:  %.0f calls/s\n", r.Rate)
	}
	fmt.Fprintf(&b, "  calls:       %d (%d errors)\n", r.Calls, r.Errors)
	fmt.Fprintf(&b, "  duration:    %s\n", time.Duration(r.Seconds*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(&b, "  calls/s:     %.1f\n", r.CallsPerSec)
	l := r.Latency
	fmt.Fprintf(&b, "\nLatency:\n  min %s  mean %s  max %s\n  p50 %s  p90 %s  p99 %s  p99.9 %s\n",
		sec(l.Min), sec(l.Mean), sec(l.Max), sec(l.P50), sec(l.P90), sec(l.P99), sec(l.P999))
	if len(r.Histogram) > 0 {
		fmt.Fprintf(&b, "\nLatency histogram:\n")
		var most uint64
		for _, bk := range r.Histogram {
			most = max(most, bk.Count)
		}
		for i, bk := range r.Histogram {
			n := 0
			if most > 0 {
				n = int(float64(bk.Count) / float64(most) * 40)
			}
			if bk.Count > 0 && n == 0 {
				n = 1
			}
			label := "≤ " + sec(bk.UpTo)
			if i == len(r.Histogram)-1 && i >= 10 {
				label = "> " + sec(r.Histogram[i-1].UpTo)
			}
			fmt.Fprintf(&b, "  %12s [%9d] %s\n", label, bk.Count, strings.Repeat("■", n))
		}
	}
	fmt.Fprintf(&b, "\nStatus codes:\n")
	codes := make([]string, 0, len(r.ByCode))
	for c := range r.ByCode {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return r.ByCode[codes[i]] > r.ByCode[codes[j]] })
	for _, c := range codes {
		fmt.Fprintf(&b, "  %-20s %d\n", c, r.ByCode[c])
		if msg, ok := r.FirstErrors[c]; ok {
			fmt.Fprintf(&b, "  %-20s e.g. %s\n", "", msg)
		}
	}
	io.WriteString(w, b.String())
}

func sec(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}
