//go:build unix

package cache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRedisFreeze measures what the secondary tier costs a new
// "+full" result — a Get that misses, then a Put, through Tiered — in each
// phase of a Redis outage: no Redis at all (memory only: the no-Redis
// figure), Redis healthy, Redis frozen by SIGSTOP (the breaker open), and
// Redis thawed. Between the healthy and frozen phases it runs the same
// operation for one second right after the freeze and reports, as metrics
// of the frozen phase, how long the breaker took to open, the slowest Get,
// and the mean Get and Get+Put in the second half of that second. With -v it
// logs that second in 100ms steps.
//
//	go test -run '^$' -bench BenchmarkRedisFreeze -benchtime 1s -v ./cache/
func BenchmarkRedisFreeze(b *testing.B) {
	ctx := context.Background()
	srv := startRedisServer(b)
	r, err := NewRedis(srv.url, RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	tc := NewTiered(NewMemory(512<<20), r)
	defer tc.Close()
	mem := NewMemory(512 << 20)
	defer mem.Close()
	v := value(1, 200)
	var next atomic.Int64
	// op does what resolving a new tree does to the cache, and returns the
	// Get's and the whole operation's latency.
	op := func(c Cache) (get, total time.Duration) {
		k := key(int(next.Add(1)))
		start := time.Now()
		_, _, _ = c.Get(ctx, k)
		get = time.Since(start)
		_ = c.Put(ctx, k, v)
		return get, time.Since(start)
	}
	// loop runs op on c for the benchmark and reports the mean Get too.
	loop := func(b *testing.B, c Cache) {
		b.ReportAllocs()
		var gets time.Duration
		n := 0
		for b.Loop() {
			g, _ := op(c)
			gets += g
			n++
		}
		b.ReportMetric(float64(gets)/float64(n), "get-ns/op")
	}
	phase := func(name string, c Cache) {
		b.Run(name, func(b *testing.B) { loop(b, c) })
	}
	phase("no-redis", mem)
	phase("healthy", tc)

	srv.freeze()
	frozen := time.Now()
	type sample struct{ at, get, total time.Duration }
	var samples []sample
	opened := time.Duration(-1)
	for time.Since(frozen) < time.Second {
		get, total := op(tc)
		at := time.Since(frozen)
		samples = append(samples, sample{at, get, total})
		if opened < 0 && r.Stats().Down {
			opened = at
		}
	}
	var slowest time.Duration
	for _, s := range samples {
		slowest = max(slowest, s.get)
	}
	mean := func(from, to time.Duration) (get, total time.Duration, n int) {
		for _, s := range samples {
			if s.at >= from && s.at < to {
				get += s.get
				total += s.total
				n++
			}
		}
		if n == 0 {
			return 0, 0, 0
		}
		return get / time.Duration(n), total / time.Duration(n), n
	}
	for from := time.Duration(0); from < time.Second; from += 100 * time.Millisecond {
		g, t, n := mean(from, from+100*time.Millisecond)
		var worst time.Duration
		for _, s := range samples {
			if s.at >= from && s.at < from+100*time.Millisecond {
				worst = max(worst, s.get)
			}
		}
		b.Logf("frozen +%4dms: %6d ops, mean Get %9v, mean Get+Put %9v, slowest Get %9v", from.Milliseconds(), n, g, t, worst)
	}
	lastGet, lastTotal, _ := mean(500*time.Millisecond, time.Second)
	b.Run("frozen", func(b *testing.B) {
		loop(b, tc)
		b.ReportMetric(float64(opened)/1e6, "ms-to-open")
		b.ReportMetric(float64(slowest)/1e6, "slowest-get-ms")
		b.ReportMetric(float64(lastGet), "get-ns-late")
		b.ReportMetric(float64(lastTotal), "op-ns-late")
	})
	if !r.Stats().Down {
		b.Fatal("breaker not open with Redis frozen")
	}

	srv.thaw()
	thawed := time.Now()
	for r.Stats().Down {
		if time.Since(thawed) > 10*time.Second {
			b.Fatal("breaker still open 10s after the thaw")
		}
		op(tc)
		time.Sleep(time.Millisecond)
	}
	b.Logf("breaker closed %v after the thaw", time.Since(thawed))
	phase("thawed", tc)

	s := r.Stats()
	b.Logf("redis stats: %d failures, %d skipped, %d outage(s)", s.Failures, s.Skips, s.Outages)
}
