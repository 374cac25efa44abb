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

	calls   uint64
	elapsed time.Duration

	callsPerSec   float64
	p50, p99      time.Duration
	allocsPerCall float64 // runtime.MemStats.Mallocs delta / calls (client + server)
	bytesPerCall  float64 // runtime.MemStats.TotalAlloc delta / calls
	dropped       uint64  // calls whose latency did not fit the preallocated slices
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
	op := func(ctx context.Context) error {
		out, err := r.Call(ctx, payload)
		if err != nil {
			return fmt.Errorf("%s: call: %w", name, err)
		}
		return checkEcho(name, payload, out)
	}
	res, err := measureOp(fmt.Sprintf("%s %dB c%d", name, len(payload), conc), op, conc, warm, dur)
	res.system, res.payload = name, len(payload)
	return res, err
}

// measureOp is measure for any call: conc goroutines run op for warm,
// then for dur. op does one call and checks its result; an error from it
// aborts the cell. label names the cell in errors. The result's system
// and payload are left for the caller to fill in.
func measureOp(label string, op func(context.Context) error, conc int, warm, dur time.Duration) (result, error) {
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
	calls, elapsed, err := drive(op, conc, dur, lats)
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

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.dropped = calls - uint64(len(all))
	slices.Sort(all)
	res.p50 = percentile(all, 0.50)
	res.p99 = percentile(all, 0.99)
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
func drive(op func(context.Context) error, conc int, d time.Duration, lats [][]time.Duration) (uint64, time.Duration, error) {
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
				err := op(ctx)
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
