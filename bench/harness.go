package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is one measured cell: one system, one payload size, one
// concurrency.
type result struct {
	system    string
	transport string // transports section: "tcp", "tls", ...; else empty
	payload   int    // bytes
	conc      int
	conns     int // client connections the callers used: 1 (shared) or conc (one each)

	calls   uint64
	elapsed time.Duration

	callsPerSec    float64
	p50, p99, p999 time.Duration
	cpuPerCall     float64 // µs of user+system CPU per call, from getrusage (client + server: one process)
	clientCPU      float64 // separate-process mode: µs per call of the client process
	serverCPU      float64 // separate-process mode: µs per call of the server process (its own getrusage)
	separate       bool    // client and server ran in separate processes
	allocsPerCall  float64 // runtime.MemStats.Mallocs delta / calls (client + server)
	bytesPerCall   float64 // runtime.MemStats.TotalAlloc delta / calls
	dropped        uint64  // calls whose latency did not fit the preallocated slices
}

// makePayload returns n deterministic pseudo-random bytes.
func makePayload(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// checkEcho reports a mismatch between what was sent and what came back.
func checkEcho(system string, payload, got []byte) error {
	if bytes.Equal(got, payload) {
		return nil
	}
	i := 0
	for i < len(got) && i < len(payload) && got[i] == payload[i] {
		i++
	}
	return fmt.Errorf("%s: echo mismatch: sent %d bytes, got %d bytes, first difference at byte %d", system, len(payload), len(got), i)
}

// warmupFor picks a warm-up duration for a measured duration d.
func warmupFor(d time.Duration) time.Duration {
	return min(max(d/10, 50*time.Millisecond), 500*time.Millisecond)
}

// measure runs conc goroutines calling r for warm, then for dur, and
// returns the measured cell. A call error or an echo mismatch aborts the
// cell with an error.
func measure(name string, r Runner, payload []byte, conc int, warm, dur time.Duration) (result, error) {
	return measureOn(name, []Runner{r}, payload, conc, warm, dur)
}

// measureOn is measure with caller i using rs[i%len(rs)]: one shared
// connection (len(rs) == 1) or one per caller.
func measureOn(name string, rs []Runner, payload []byte, conc int, warm, dur time.Duration) (result, error) {
	op := func(ctx context.Context, i int) error {
		out, err := rs[i%len(rs)].Call(ctx, payload)
		if err != nil {
			return fmt.Errorf("%s: call: %w", name, err)
		}
		if len(payload) >= 64<<10 { // a large echo: compare a few spots, not every byte (a memcmp of MiBs per call is the harness's cost, not the system's)
			return checkEchoSampled(name, payload, out)
		}
		return checkEcho(name, payload, out)
	}
	res, err := measureOpN(fmt.Sprintf("%s %dB c%d", name, len(payload), conc), op, conc, warm, dur)
	res.system, res.payload, res.conns = name, len(payload), min(len(rs), conc)
	return res, err
}

// checkEchoSampled checks the length and 64 bytes at each of 17 spots.
func checkEchoSampled(system string, payload, got []byte) error {
	if len(got) != len(payload) {
		return checkEcho(system, payload, got)
	}
	for k := 0; k <= 16; k++ {
		at := min(k*(len(payload)/16), max(len(payload)-64, 0))
		end := min(at+64, len(payload))
		if !bytes.Equal(got[at:end], payload[at:end]) {
			return checkEcho(system, payload, got)
		}
	}
	return nil
}

// measureOp is measure for any call: conc goroutines run op for warm,
// then for dur. op does one call and checks its result; an error from it
// aborts the cell. label names the cell in errors. The result's system
// and payload are left for the caller to fill in.
func measureOp(label string, op func(context.Context) error, conc int, warm, dur time.Duration) (result, error) {
	return measureOpN(label, func(ctx context.Context, _ int) error { return op(ctx) }, conc, warm, dur)
}

// measureOpN is measureOp with op told which caller (0..conc-1) runs it.
func measureOpN(label string, op func(context.Context, int) error, conc int, warm, dur time.Duration) (result, error) {
	if conc < 1 {
		return result{}, fmt.Errorf("concurrency %d < 1", conc)
	}
	// A system that hangs must not hang the whole run.
	watchdog := time.AfterFunc(warm+dur+time.Minute, func() {
		panic(fmt.Sprintf("bench: %s made no progress for over a minute", label))
	})
	defer watchdog.Stop()

	// Warm-up: same shape, no latency recording. Also sizes the latency
	// slices: 3x the warm-up rate, so they are not outgrown.
	warmCalls, warmElapsed, err := drive(op, conc, warm, nil)
	if err != nil {
		return result{}, err
	}
	rate := float64(warmCalls) / max(warmElapsed.Seconds(), 1e-9)
	perG := int(rate*dur.Seconds()*3/float64(conc)) + 1024
	perG = min(perG, (16<<20)/conc+1024) // at most ~128 MiB of samples
	lats := make([][]time.Duration, conc)
	for i := range lats {
		lats[i] = make([]time.Duration, 0, perG)
	}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := processCPU()
	sample := sampleCPU() // separate-process mode: the server's CPU too
	calls, elapsed, err := drive(op, conc, dur, lats)
	cpu1 := processCPU()
	srvCPU := sample()
	runtime.ReadMemStats(&after)
	if err != nil {
		return result{}, err
	}

	res := result{conc: conc, calls: calls, elapsed: elapsed}
	if calls == 0 {
		return res, fmt.Errorf("%s: no call completed in %v", label, dur)
	}
	res.callsPerSec = float64(calls) / elapsed.Seconds()
	res.allocsPerCall = float64(after.Mallocs-before.Mallocs) / float64(calls)
	res.bytesPerCall = float64(after.TotalAlloc-before.TotalAlloc) / float64(calls)
	res.cpuPerCall = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(calls)
	if srvCPU >= 0 {
		res.separate = true
		res.clientCPU = res.cpuPerCall
		res.serverCPU = float64(srvCPU) / float64(time.Microsecond) / float64(calls)
	}

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.dropped = calls - uint64(len(all))
	slices.Sort(all)
	res.p50 = percentile(all, 0.50)
	res.p99 = percentile(all, 0.99)
	res.p999 = percentile(all, 0.999)
	return res, nil
}

// percentile returns the nearest-rank q-quantile of sorted samples.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// drive runs conc callers of op for d. When lats is non-nil, caller i
// appends each call's latency to lats[i] while it has capacity (it never
// grows it, so recording allocates nothing). It returns the number of
// completed calls and the wall time from start until every caller stopped.
// The latency covers op, so it includes checking the result.
func drive(op func(context.Context, int) error, conc int, d time.Duration, lats [][]time.Duration) (uint64, time.Duration, error) {
	ctx := context.Background() // no deadline: some systems pay for one per call
	var (
		stop  atomic.Bool
		total atomic.Uint64
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, conc)
	)
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var lat []time.Duration
			if lats != nil {
				lat = lats[i][:0]
			}
			var n uint64
			<-start
			for !stop.Load() {
				t0 := time.Now()
				err := op(ctx, i)
				el := time.Since(t0)
				if err != nil {
					errs[i] = err
					stop.Store(true)
					break
				}
				if len(lat) < cap(lat) {
					lat = append(lat, el)
				}
				n++
			}
			if lats != nil {
				lats[i] = lat
			}
			total.Add(n)
		}(i)
	}
	t0 := time.Now()
	close(start)
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			return 0, elapsed, err
		}
	}
	return total.Load(), elapsed, nil
}
