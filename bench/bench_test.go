package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkUnary/<system>/<payload>/c<conc>: the same runners as the
// command, b.N calls split over conc goroutines sharing one connection.
//
//	go test -run '^$' -bench . -benchmem
//	go test -run '^$' -bench 'Unary/(arbor|grpc)/1KiB/c64' -benchmem -count 5
//
// Besides ns/op (wall time per call across all callers) and allocs/op
// (client + server), it reports p50-ns and p99-ns per-call latencies.
func BenchmarkUnary(b *testing.B) {
	for _, name := range knownSystems() {
		b.Run(name, func(b *testing.B) {
			r, err := registry[name].start(context.Background())
			if err != nil {
				b.Fatalf("start %s: %v", name, err)
			}
			defer r.Close()
			for _, size := range []int{64, 1024} {
				payload := makePayload(size)
				b.Run(benchSizeName(size), func(b *testing.B) {
					for _, c := range []int{1, 16, 64, 256} {
						b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
							benchCalls(b, name, r, payload, c)
						})
					}
				})
			}
		})
	}
}

// benchSizeName names a payload size without spaces: 64B, 1KiB.
func benchSizeName(size int) string {
	switch {
	case size >= 1<<10 && size%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", size>>10)
	default:
		return fmt.Sprintf("%dB", size)
	}
}

func benchCalls(b *testing.B, name string, r Runner, payload []byte, conc int) {
	b.ReportAllocs()
	ctx := context.Background()
	lats := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < conc; i++ {
		n := b.N / conc
		if i < b.N%conc {
			n++
		}
		lats[i] = make([]time.Duration, 0, n)
		wg.Add(1)
		go func(i, n int) {
			defer wg.Done()
			<-start
			lat := lats[i]
			for range n {
				t0 := time.Now()
				out, err := r.Call(ctx, payload)
				lat = append(lat, time.Since(t0))
				if err == nil {
					err = checkEcho(name, payload, out)
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
			lats[i] = lat
		}(i, n)
	}
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(percentile(all, 0.50)), "p50-ns")
	b.ReportMetric(float64(percentile(all, 0.99)), "p99-ns")
}
