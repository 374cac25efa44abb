package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
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
