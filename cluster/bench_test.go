package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
)

// BenchmarkPick measures one pick among 16 candidates per strategy;
// every one should be allocation-free.
func BenchmarkPick(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	now := time.Now()
	for _, bc := range []struct {
		name string
		bal  Balancer
	}{
		{"roundrobin", &RoundRobin{}},
		{"random", NewRandom(nil)},
		{"leastconn", &LeastConnections{}},
		{"p2c", NewP2C(nil, nil)},
		{"rendezvous", Rendezvous{}},
	} {
		for _, n := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/n=%d", bc.name, n), func(b *testing.B) {
				cs := candidates(n)
				for i, c := range cs {
					c.Stats.Observe(time.Duration(i+1)*time.Millisecond, now)
					for range i % 3 {
						c.Stats.Start()
					}
				}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						if bc.bal.Pick(cs, keys[i&1023]) < 0 {
							b.Fatal("no pick")
						}
						i++
					}
				})
			})
		}
	}
}

// BenchmarkStatsDone measures recording a finished call.
func BenchmarkStatsDone(b *testing.B) {
	s := NewStats(0)
	now := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Start()
		s.Done(time.Millisecond, now.Add(time.Duration(i)))
	}
}

// BenchmarkPhi measures a heartbeat and a phi reading for one peer.
func BenchmarkPhi(b *testing.B) {
	d := NewPhiDetector(PhiConfig{})
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(100 * time.Millisecond)
		_ = d.Heartbeat("peer", at)
		_ = d.Phi("peer", at.Add(50*time.Millisecond))
	}
}

// BenchmarkConverge starts N nodes on loopback (not timed), then times
// from the moment all but the first start joining it, concurrently, until
// every node sees N alive members. Run it alone:
//
//	go test -run '^$' -bench Converge -benchtime 3x ./cluster/
func BenchmarkConverge(b *testing.B) {
	for _, size := range []int{32, 64} {
		b.Run("nodes="+strconv.Itoa(size), func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				b.StopTimer()
				nodes := make([]*Node, size)
				for i := range nodes {
					n, err := start(context.Background(), testConfigNamed(fmt.Sprintf("b%d", i)))
					if err != nil {
						b.Fatal(err)
					}
					nodes[i] = n
				}
				seed := []string{nodes[0].GossipAddr()}
				began := time.Now()
				b.StartTimer()
				var wg sync.WaitGroup
				errs := make(chan error, size)
				for _, n := range nodes[1:] {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := n.joinSeeds(context.Background(), seed, 10*time.Second); err != nil {
							errs <- err
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				for !converged(nodes, size) {
					if time.Since(began) > 60*time.Second {
						b.Fatalf("%d nodes did not converge in 60s", size)
					}
					time.Sleep(2 * time.Millisecond)
				}
				b.StopTimer()
				worst = max(worst, time.Since(began))
				for _, n := range nodes {
					n.Close()
				}
				b.StartTimer()
			}
			b.ReportMetric(worst.Seconds(), "worst-s")
		})
	}
}

func converged(nodes []*Node, size int) bool {
	for _, n := range nodes {
		if alive(n) != size {
			return false
		}
	}
	return true
}

// BenchmarkClientOverhead compares 64 callers through a cluster client
// (to a one-member cluster) with the same callers on a direct
// arbor.Client to that member: the bar is at most 10 % fewer calls/s.
func BenchmarkClientOverhead(b *testing.B) {
	ws := startWorkersB(b, 1)
	direct, err := arbor.Dial(context.Background(), ws[0].url)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	cfg := DefaultClientConfig()
	cfg.Seeds = []string{ws[0].url}
	cc, err := DialConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	for _, bc := range []struct {
		name string
		c    arbor.Caller
	}{{"direct", direct}, {"cluster", cc}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(32) // 64 callers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if v, err := arbor.Call2[int](ctx, bc.c, "add", i, 1); err != nil || v != i+1 {
						b.Errorf("add: %d %v", v, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkHedging measures the p99 of calls to 3 members of which one is
// 50 ms slow, without and with hedging at a 5 ms delay (the bar: hedging
// cuts the p99 by at least 5×).
func BenchmarkHedging(b *testing.B) {
	ws := startWorkersB(b, 3)
	ws[0].slow.Store(int64(50 * time.Millisecond))
	for _, h := range []time.Duration{0, 5 * time.Millisecond} {
		b.Run(fmt.Sprintf("hedge=%v", h), func(b *testing.B) {
			cfg := DefaultClientConfig()
			cfg.Seeds = []string{ws[0].url}
			cfg.Hedge.Delay = h
			cfg.Balancer = NewRandom(nil) // the slow member gets a third of the calls
			c, err := DialConfig(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			for len(c.Members()) < 3 {
				time.Sleep(10 * time.Millisecond)
			}
			ctx := context.Background()
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := arbor.Call1[int](ctx, c, "work", i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		})
	}
}
