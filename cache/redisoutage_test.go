//go:build unix

package cache

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// This file tests a Redis cache whose server dies or freezes mid-load: the
// breaker opens within a second, the outage is one log line and counters,
// and the cache uses the server again once it answers.

// freeze stops the server with SIGSTOP: connections stay open, nothing
// answers.
func (s *redisServer) freeze() { s.signal(syscall.SIGSTOP) }

// thaw resumes a frozen server.
func (s *redisServer) thaw() { s.signal(syscall.SIGCONT) }

// outageOptions keeps the probe waits short so that recovery is quick.
func outageOptions(rec *logRecorder) RedisOptions {
	return RedisOptions{Logger: slog.New(rec), ProbeMin: 50 * time.Millisecond, ProbeMax: 400 * time.Millisecond}
}

// redisLoad runs goroutines that each Get a new key and Put it, as the
// resolution of a new "+full" tree does, until stopped. Every error must
// wrap ErrUnavailable.
type redisLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup
	ops  atomic.Int64
	errs atomic.Int64
}

func startLoad(t *testing.T, c Cache, goroutines int) *redisLoad {
	l := &redisLoad{stop: make(chan struct{})}
	var next atomic.Int64
	for range goroutines {
		l.wg.Go(func() {
			ctx := context.Background()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				k := key(int(next.Add(1)) + 1_000_000)
				_, _, gerr := c.Get(ctx, k)
				perr := c.Put(ctx, k, value(1, 200))
				for _, err := range []error{gerr, perr} {
					if err != nil {
						l.errs.Add(1)
						if !errors.Is(err, ErrUnavailable) {
							t.Errorf("an error that is not ErrUnavailable: %v", err)
						}
					}
				}
				l.ops.Add(1)
			}
		})
	}
	t.Cleanup(l.end)
	return l
}

func (l *redisLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// checkSkipping checks that, with the breaker open, operations go on
// (skipped) while failures stop growing: past the threshold's, at most one
// per other goroutine, whose operation was admitted before the breaker
// opened. (Counted, not timed: on a loaded machine such an operation may
// be late by any amount.)
func checkSkipping(t *testing.T, r *Redis, l *redisLoad, rec *logRecorder, goroutines int) {
	t.Helper()
	time.Sleep(2 * DefaultRedisTimeout) // most operations in flight at the opening end
	s0, ops0 := r.Stats(), l.ops.Load()
	time.Sleep(300 * time.Millisecond)
	s1, ops1 := r.Stats(), l.ops.Load()
	if !s1.Down {
		t.Fatalf("breaker closed again while the server is still down: %+v", s1)
	}
	// A probe fails without counting; every operation admitted after the
	// opening must be skipped: what fails after it is what was in flight
	// then, at most one operation per other goroutine. (How many failed
	// before it varies: a success landing late resets the count of
	// failures in a row.)
	var atOpen int64 = -1
	for _, lr := range rec.records(slog.LevelError) {
		if n, err := strconv.ParseInt(recordAttr(lr, "failures"), 10, 64); err == nil {
			atOpen = n
		}
	}
	if atOpen < 0 {
		t.Fatal("no opening logged with its count of failures")
	}
	if most := int64(goroutines) - 1; s1.Failures-atOpen > most {
		t.Errorf("%d operations failed after the breaker opened (%d before), at most %d can have been in flight then: the rest went to the dead server while it was open", s1.Failures-atOpen, atOpen, most)
	}
	if ops1-ops0 < 100 || s1.Skips-s0.Skips < 2*(ops1-ops0)-int64(2*goroutines) {
		t.Errorf("in 300ms with the breaker open: %d operations, %d skipped: want them all, quickly", ops1-ops0, s1.Skips-s0.Skips)
	}
}

// checkOneOutageLogged checks that the outage was one error line and the
// recovery one info line.
func checkOneOutageLogged(t *testing.T, rec *logRecorder, r *Redis) {
	t.Helper()
	recs := rec.records(slog.LevelInfo)
	if len(recs) != 2 || recs[0].Level != slog.LevelError || recs[1].Level != slog.LevelInfo ||
		recordAttr(recs[0], "addr") != r.addr || recordAttr(recs[1], "addr") != r.addr {
		for _, rec := range recs {
			t.Logf("%v %s", rec.Level, rec.Message)
		}
		t.Fatalf("want one error line at the outage and one info line at recovery, got %d lines", len(recs))
	}
	if s := r.Stats(); s.Outages != 1 || s.Down {
		t.Fatalf("Stats = %+v, want one outage, over", s)
	}
}

// TestRedisFrozenOpensBreaker freezes the server (SIGSTOP) under load: the
// breaker must open within a second of the freeze, and close again once
// the server is thawed.
func TestRedisFrozenOpensBreaker(t *testing.T) {
	const goroutines = 8
	ctx := context.Background()
	srv := startRedisServer(t)
	rec := &logRecorder{}
	r := newRedis(t, srv.url, outageOptions(rec))
	if err := r.Put(ctx, key(1), []byte("kept")); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, r, goroutines)
	waitFor(t, 5*time.Second, "load running", func() bool { return l.ops.Load() > 200 })
	if s := r.Stats(); s.Failures != 0 || s.Down {
		t.Fatalf("failures before the freeze: %+v", s)
	}

	srv.freeze()
	opened := waitFor(t, time.Second, "breaker open after the freeze", func() bool { return r.Stats().Down })
	t.Logf("breaker open %v after the freeze, after %d failures", opened, r.Stats().Failures)
	checkSkipping(t, r, l, rec, goroutines)

	srv.thaw()
	closed := waitFor(t, 5*time.Second, "breaker closed after the thaw", func() bool { return !r.Stats().Down })
	t.Logf("breaker closed %v after the thaw", closed)
	puts := r.Stats().Puts
	waitFor(t, 5*time.Second, "Puts reaching the server again", func() bool { return r.Stats().Puts > puts+100 })
	l.end()
	if v, ok, err := r.Get(ctx, key(1)); err != nil || !ok || string(v) != "kept" {
		t.Fatalf("value from before the freeze: %q, %v, %v", v, ok, err)
	}
	checkOneOutageLogged(t, rec, r)
}

// TestRedisKilledOpensBreaker kills the server (SIGKILL) under load, then
// starts a new one on the same port.
func TestRedisKilledOpensBreaker(t *testing.T) {
	const goroutines = 8
	ctx := context.Background()
	srv := startRedisServer(t)
	rec := &logRecorder{}
	r := newRedis(t, srv.url, outageOptions(rec))
	l := startLoad(t, r, goroutines)
	waitFor(t, 5*time.Second, "load running", func() bool { return l.ops.Load() > 200 })

	srv.kill()
	opened := waitFor(t, time.Second, "breaker open after the kill", func() bool { return r.Stats().Down })
	t.Logf("breaker open %v after the kill, after %d failures", opened, r.Stats().Failures)
	checkSkipping(t, r, l, rec, goroutines)

	srv.restart()
	closed := waitFor(t, 5*time.Second, "breaker closed after the restart", func() bool { return !r.Stats().Down })
	t.Logf("breaker closed %v after the restart", closed)
	puts := r.Stats().Puts
	waitFor(t, 5*time.Second, "Puts reaching the server again", func() bool { return r.Stats().Puts > puts+100 })
	l.end()
	if err := r.Put(ctx, key(1), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.Get(ctx, key(1)); err != nil || !ok || string(v) != "new" {
		t.Fatalf("Get from the restarted server: %q, %v, %v", v, ok, err)
	}
	checkOneOutageLogged(t, rec, r)
}

// TestRedisFrozenSequential is the sequential case, one tree after
// another: the breaker opens after FailureThreshold operations, each
// bounded by the timeout.
func TestRedisFrozenSequential(t *testing.T) {
	ctx := context.Background()
	srv := startRedisServer(t)
	r := newRedis(t, srv.url, RedisOptions{Timeout: 50 * time.Millisecond})
	if err := r.Put(ctx, key(1), []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.freeze()
	defer srv.thaw()
	start := time.Now()
	n := 0
	for !r.Stats().Down {
		if time.Since(start) > time.Second {
			t.Fatalf("breaker still closed 1s after the freeze, after %d operations", n)
		}
		if _, ok, err := r.Get(ctx, key(1)); ok || !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get from a frozen server = %v, %v; want an ErrUnavailable miss", ok, err)
		}
		n++
	}
	if n != DefaultRedisFailureThreshold {
		t.Fatalf("breaker opened after %d failed operations, want %d", n, DefaultRedisFailureThreshold)
	}
	for range 1000 {
		if _, ok, err := r.Get(ctx, key(1)); ok || err != nil {
			t.Fatalf("Get with the breaker open = %v, %v; want a plain miss", ok, err)
		}
	}
	if s := r.Stats(); s.Skips != 1000 || s.Failures != int64(n) {
		t.Fatalf("Stats = %+v", s)
	}
}

// TestRedisUnreachable: a server that is not there at all.
func TestRedisUnreachable(t *testing.T) {
	ctx := context.Background()
	srv := startRedisServer(t)
	srv.kill()
	rec := &logRecorder{}
	r := newRedis(t, srv.url, outageOptions(rec))
	for range 500 {
		_, _, _ = r.Get(ctx, key(1))
		_ = r.Put(ctx, key(1), nil)
	}
	s := r.Stats()
	if !s.Down || s.Failures != DefaultRedisFailureThreshold || s.Skips != 1000-DefaultRedisFailureThreshold {
		t.Fatalf("Stats = %+v", s)
	}
	if n := len(rec.records(slog.LevelInfo)); n != 1 {
		t.Fatalf("%d lines at Info or above for one outage", n)
	}
	// Probes go on in the background, one at a time, and fail quietly.
	time.Sleep(300 * time.Millisecond)
	_, _, _ = r.Get(ctx, key(1))
	if n := len(rec.records(slog.LevelInfo)); n != 1 {
		t.Fatalf("%d lines at Info or above after failed probes", n)
	}
}

// TestCloseWhileDownLeavesNothing closes a Tiered over a frozen Redis with
// a probe out, and a disk cache that turned itself off: Close returns,
// and no goroutine of theirs is left.
func TestCloseWhileDownLeavesNothing(t *testing.T) {
	ctx := context.Background()
	srv := startRedisServer(t)
	before := goleak.IgnoreCurrent()

	r, err := NewRedis(srv.url, RedisOptions{ProbeMin: time.Millisecond, ProbeMax: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tc := NewTiered(NewMemory(0), r)
	if err := tc.Put(ctx, key(1), []byte("v")); err != nil {
		t.Fatal(err)
	}
	srv.freeze()
	defer srv.thaw()
	waitFor(t, time.Second, "breaker open", func() bool {
		_, _, _ = tc.Get(ctx, key(2))
		return r.Stats().Down
	})
	time.Sleep(5 * time.Millisecond)
	_, _, _ = tc.Get(ctx, key(2)) // starts a probe, which waits on the frozen server
	if r.br.state.Load() != breakerProbing {
		t.Fatal("no probe out")
	}
	d, rec := openLogged(t, t.TempDir())
	fillDisk(t, d)
	damageOpenFile(t, d, 5)
	dt := NewTiered(NewMemory(0), d)
	_, _, _ = dt.Get(ctx, key(3))
	if !d.Stats().Down || len(rec.records(slog.LevelError)) != 1 {
		t.Fatal("the disk cache did not turn itself off")
	}

	start := time.Now()
	if err := tc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dt.Close(); err != nil {
		t.Logf("Close of the damaged disk cache: %v", err)
	}
	t.Logf("both closed in %v", time.Since(start))
	goleak.VerifyNone(t, before)
}
