package main

import (
	"context"
	"fmt"
	"io"
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
			for _, size := range []int{64, 1024, 1 << 20} {
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

// BenchmarkTransport/<system>-<transport>/64B/c<conc>: the transports
// section's runners (Arbor over tcp, tls, quic, unix; grpc over tcp, tls),
// measured like BenchmarkUnary.
//
//	go test -run '^$' -bench 'Transport/arbor-(tls|quic)' -benchmem
func BenchmarkTransport(b *testing.B) {
	for _, name := range knownTransports() {
		b.Run(name, func(b *testing.B) {
			r, err := transportRegistry[name].start(context.Background())
			if err != nil {
				b.Fatalf("start %s: %v", name, err)
			}
			defer r.Close()
			payload := makePayload(64)
			b.Run(benchSizeName(64), func(b *testing.B) {
				for _, c := range []int{1, 16} {
					b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
						benchCalls(b, name, r, payload, c)
					})
				}
			})
		})
	}
}

// BenchmarkTree/<variant>/c<conc>: the tree section's variants (unary,
// tree-cached, tree-uncached) on one server and one connection, measured
// like BenchmarkUnary; every call checks the sum.
//
//	go test -run '^$' -bench 'Tree/(unary|tree-cached)' -benchmem -count 5
func BenchmarkTree(b *testing.B) {
	if startTree == nil {
		b.Skip("built without Arbor")
	}
	r, err := startTree(context.Background())
	if err != nil {
		b.Fatalf("start: %v", err)
	}
	defer r.Close()
	for _, v := range treeVariants {
		op := r.Op(v)
		if err := op(context.Background()); err != nil { // warms the cache
			b.Fatalf("%s: %v", v, err)
		}
		b.Run(v, func(b *testing.B) {
			for _, c := range []int{1, 16} {
				b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) { benchOp(b, op, c) })
			}
		})
	}
}

// BenchmarkStream/<system>/<payload>/l<lanes>: b.N messages split over
// lanes bidirectional echo streams on one connection; each lane sends its
// share back to back while a receiver reads the echoes. ns/op is wall time
// per echoed message (all lanes together), allocs/op counts client and
// server; msgs/s is reported too.
//
//	go test -run '^$' -bench 'Stream/(arbor|grpc)/64B' -benchmem
func BenchmarkStream(b *testing.B) {
	for _, name := range knownStreamSystems() {
		b.Run(name, func(b *testing.B) {
			r, err := streamRegistry[name].start(context.Background())
			if err != nil {
				b.Fatalf("start %s: %v", name, err)
			}
			defer r.Close()
			for _, size := range []int{64, 1024, 1 << 20} {
				payload := makePayload(size)
				b.Run(benchSizeName(size), func(b *testing.B) {
					for _, lanes := range []int{1, 16} {
						b.Run(fmt.Sprintf("l%d", lanes), func(b *testing.B) {
							benchStream(b, name, r, payload, lanes)
						})
					}
				})
			}
		})
	}
}

func benchStream(b *testing.B, name string, r StreamRunner, payload []byte, lanes int) {
	b.ReportAllocs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ls := make([]Lane, lanes)
	for i := range ls {
		l, err := r.Open(ctx)
		if err != nil {
			b.Fatalf("open lane %d: %v", i, err)
		}
		ls[i] = l
	}
	errs := make([]error, 2*lanes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, l := range ls {
		n := b.N / lanes
		if i < b.N%lanes {
			n++
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			for range n {
				if err := l.Send(payload); err != nil {
					errs[2*i] = fmt.Errorf("lane %d: send: %w", i, err)
					cancel()
					return
				}
			}
			if err := l.CloseSend(); err != nil {
				errs[2*i] = err
			}
		}()
		go func() {
			defer wg.Done()
			got := 0
			for {
				m, err := l.Recv()
				if err == io.EOF {
					break
				}
				if err == nil {
					err = checkEcho(name, payload, m)
				}
				if err != nil {
					errs[2*i+1] = fmt.Errorf("lane %d: %w", i, err)
					cancel()
					return
				}
				got++
			}
			if got != n {
				errs[2*i+1] = fmt.Errorf("lane %d: sent %d, %d echoed", i, n, got)
			}
		}()
	}
	b.ResetTimer()
	t0 := time.Now()
	close(start)
	wg.Wait()
	el := time.Since(t0)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
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
	benchOp(b, func(ctx context.Context) error {
		out, err := r.Call(ctx, payload)
		if err != nil {
			return err
		}
		return checkEcho(name, payload, out)
	}, conc)
}

// benchOp runs b.N calls of op split over conc goroutines and reports
// p50-ns and p99-ns besides ns/op and allocs/op. op does one call and
// checks its result.
func benchOp(b *testing.B, op func(context.Context) error, conc int) {
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
				err := op(ctx)
				lat = append(lat, time.Since(t0))
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
