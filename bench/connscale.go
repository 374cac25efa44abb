package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// The connscale section: many idle client connections to one server in a
// child process (so that its RSS is the server's alone), then load on a
// few of them. Per system: the server's RSS and goroutines per idle
// connection, the CPU it spends while they are idle, and calls/s over the
// loaded ones.

type scaleConfig struct {
	idle, active int
	dur, warm    time.Duration
}

type scaleResult struct {
	system          string
	idle            int
	rssBefore       int64
	rssAfter        int64
	gBefore, gAfter int
	idleCPU         time.Duration // server CPU over idleWindow with every connection idle
	load            result
	dialTime        time.Duration
}

const idleWindow = 3 * time.Second

func runConnScale(w io.Writer, sc scaleConfig, sys []system) error {
	fmt.Fprintf(w, "## Connections at scale: %d idle connections to one server, then load on %d of them\n\n", sc.idle, sc.active)
	var results []scaleResult
	var notes []string
	var firstErr error
	for _, s := range sys {
		res, err := scaleOne(sc, s.name)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", s.name, err))
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		results = append(results, res)
	}
	fmt.Fprintln(w, "| system | idle conns | server RSS before → after | RSS per idle conn | goroutines per conn | server CPU while idle | dial + first call, all conns | load: conns = callers | calls/s | p50 | p99 | p99.9 | server CPU µs/call |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	per := map[string]float64{}
	for _, r := range results {
		rss := float64(r.rssAfter-r.rssBefore) / float64(r.idle)
		per[r.system] = rss
		fmt.Fprintf(w, "| %s | %d | %.1f → %.1f MiB | %.1f KiB | %.2f | %v in %v (%.2f%% of a core) | %v | %d | %s | %s | %s | %s | %.1f |\n",
			r.system, r.idle, float64(r.rssBefore)/(1<<20), float64(r.rssAfter)/(1<<20), rss/1024,
			float64(r.gAfter-r.gBefore)/float64(r.idle), r.idleCPU.Round(time.Millisecond), idleWindow,
			100*r.idleCPU.Seconds()/idleWindow.Seconds(), r.dialTime.Round(time.Millisecond),
			r.load.conc, fmtRate(r.load.callsPerSec), fmtDur(r.load.p50), fmtDur(r.load.p99), fmtDur(r.load.p999), r.load.serverCPU)
	}
	fmt.Fprintln(w)
	if a, ok := per["arbor"]; ok {
		if g, ok := per["grpc"]; ok && g > 0 {
			verdict := "met"
			if a/g > 0.5 {
				verdict = "NOT met"
			}
			fmt.Fprintf(w, "Bar (Arbor's server RSS per idle connection <= 0.5x grpc-go's): %s, %.1f KiB vs %.1f KiB = %.2fx.\n\n", verdict, a/1024, g/1024, a/g)
		}
	}
	fmt.Fprintln(w, "Notes:")
	for _, n := range notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	fmt.Fprintln(w, "- the server runs in a child process (bench -serve NAME); this process holds the clients. Each connection makes one 1-byte echo (so that lazy clients such as grpc-go's really connect), then stays idle.")
	fmt.Fprintf(w, "- RSS is the child's VmRSS after runtime.GC, before the connections and %v after the last was made; per connection = the difference ÷ connections. Goroutines likewise (runtime.NumGoroutine).\n", time.Second)
	fmt.Fprintf(w, "- server CPU while idle: the child's getrusage over %v with every connection idle (keep-alive pings, if any, included).\n", idleWindow)
	fmt.Fprintln(w, "- load: the first connections, one caller each, 64 B echoes; server CPU from the child's getrusage.")
	fmt.Fprintln(w)
	return firstErr
}

func scaleOne(sc scaleConfig, name string) (scaleResult, error) {
	rs, ok := remoteRegistry[name]
	if !ok {
		return scaleResult{}, fmt.Errorf("no separate-process runner")
	}
	ch, err := startChild(name, -1)
	if err != nil {
		return scaleResult{}, err
	}
	defer ch.stop()
	res := scaleResult{system: name, idle: sc.idle}
	s0, err := ch.stats()
	if err != nil {
		return res, err
	}
	res.rssBefore, res.gBefore = s0.rss, s0.goroutines

	conns := make([]Runner, sc.idle)
	defer func() {
		var wg sync.WaitGroup
		for i := 0; i < len(conns); i += 500 {
			wg.Add(1)
			go func(part []Runner) {
				defer wg.Done()
				for _, c := range part {
					if c != nil {
						c.Close()
					}
				}
			}(conns[i:min(i+500, len(conns))])
		}
		wg.Wait()
	}()
	t0 := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		derr error
	)
	next := make(chan int)
	one := []byte{7}
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				c, err := rs.dial(ctx, ch.addr)
				if err == nil {
					var got []byte
					if got, err = c.Call(ctx, one); err == nil {
						err = checkEcho(name, one, got)
					}
					if err != nil {
						c.Close()
					}
				}
				cancel()
				if err != nil {
					mu.Lock()
					if derr == nil {
						derr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		}()
	}
	for i := range conns {
		mu.Lock()
		failed := derr != nil
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if derr != nil {
		return res, derr
	}
	res.dialTime = time.Since(t0)
	fmt.Fprintf(os.Stderr, "connscale %s: %d connections in %v\n", name, sc.idle, res.dialTime.Round(time.Millisecond))
	time.Sleep(time.Second)
	s1, err := ch.stats()
	if err != nil {
		return res, err
	}
	res.rssAfter, res.gAfter = s1.rss, s1.goroutines
	time.Sleep(idleWindow)
	s2, err := ch.stats()
	if err != nil {
		return res, err
	}
	res.idleCPU = s2.cpu - s1.cpu

	var sampleErr error
	cpuSampler = func() func() time.Duration {
		a, err := ch.stats()
		return func() time.Duration {
			b, err2 := ch.stats()
			if err != nil || err2 != nil {
				sampleErr = fmt.Errorf("server stats: %v %v", err, err2)
			}
			return b.cpu - a.cpu
		}
	}
	defer func() { cpuSampler = nil }()
	load, err := measureOn(name, conns[:sc.active], makePayload(64), sc.active, sc.warm, sc.dur)
	if err == nil {
		err = sampleErr
	}
	res.load = load
	fmt.Fprintf(os.Stderr, "connscale %s: RSS %.1f KiB/conn, load %s calls/s\n", name, float64(res.rssAfter-res.rssBefore)/float64(sc.idle)/1024, fmtRate(load.callsPerSec))
	return res, err
}
