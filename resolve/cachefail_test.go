package resolve

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
)

// This file tests that a failing secondary cache costs resolution a miss
// and nothing else: the right result, no error.

// panickyCache panics in every Get and Put.
type panickyCache struct{ failingCache }

func (panickyCache) Get(context.Context, cache.Key) ([]byte, bool, error) { panic("cache on fire") }
func (panickyCache) Put(context.Context, cache.Key, []byte) error         { panic("cache on fire") }

func TestSecondaryCachePanicsAreMisses(t *testing.T) {
	e := newEngine(t, Config{Secondary: panickyCache{}})
	for i := range 3 {
		if got := resolveInt(t, e, request.New("add+full", int64(i), 2)); got != int64(i)+2 {
			t.Fatal(got)
		}
	}
	if st := e.Stats(); st.CacheErrors != 6 || st.Failures != 0 {
		t.Errorf("stats %+v: want 6 cache errors, no failed resolutions", st)
	}
}

// levelRecorder keeps the level of every record.
type levelRecorder struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (r *levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *levelRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *levelRecorder) WithGroup(string) slog.Handler            { return r }
func (r *levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.levels = append(r.levels, rec.Level)
	r.mu.Unlock()
	return nil
}

func (r *levelRecorder) count(min slog.Level) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.levels {
		if l >= min {
			n++
		}
	}
	return n
}

// fullTrees returns n distinct +full trees and their sums.
func fullTrees(n, salt int) ([]*request.Node, []int64) {
	trees := make([]*request.Node, n)
	sums := make([]int64, n)
	for i := range trees {
		a, b := int64(salt*1000+i), int64(i*i)
		trees[i] = request.New("add+full", request.New("num+full", a), b)
		sums[i] = a + b
	}
	return trees, sums
}

func resolveAll(t *testing.T, e *Engine, trees []*request.Node, sums []int64) {
	t.Helper()
	for i, tree := range trees {
		if got := resolveInt(t, e, tree); got != sums[i] {
			t.Fatalf("tree %d = %d, want %d", i, got, sums[i])
		}
	}
}

// writeDamagedCache writes a real cache file into dir and damages it.
func writeDamagedCache(t *testing.T, dir string, damage func([]byte) []byte) {
	t.Helper()
	d, err := cache.OpenDisk(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Config{Secondary: d})
	trees, sums := fullTrees(40, 0)
	resolveAll(t, e, trees, sums)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, cache.DiskFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, damage(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedDiskCacheAtStart: the engine starts on a damaged cache file
// and resolves correctly, through a disk cache that works.
func TestDamagedDiskCacheAtStart(t *testing.T) {
	ps := os.Getpagesize()
	damage := map[string]func([]byte) []byte{
		"truncated mid-page": func(b []byte) []byte { return b[:3*ps+ps/2] },
		"truncated to 100":   func(b []byte) []byte { return b[:100] },
		"garbage": func(b []byte) []byte {
			rng := rand.New(rand.NewPCG(1, 1))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		},
		"data pages zeroed": func(b []byte) []byte { clear(b[2*ps:]); return b },
		"both meta pages":   func(b []byte) []byte { b[16+40] ^= 0xff; b[ps+16+40] ^= 0xff; return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeDamagedCache(t, dir, f)
			d, err := cache.OpenDisk(dir, 1<<20)
			if err != nil {
				t.Fatalf("OpenDisk on a damaged file: %v", err)
			}
			e := newEngine(t, Config{Secondary: d})
			trees, sums := fullTrees(40, 0)
			for range 2 {
				resolveAll(t, e, trees, sums)
			}
			if n := e.Calls("add+full"); n != 40 {
				t.Errorf("add+full ran %d times for 40 trees resolved twice", n)
			}
			st := e.Stats()
			if st.CacheErrors != 0 || st.Secondary == nil || st.Secondary.Puts < 80 || st.Secondary.Down {
				t.Errorf("the disk cache did not work after recovery: %+v / %+v", st, st.Secondary)
			}
		})
	}
}

// TestDiskCacheDamagedWhileRunning damages the cache file under a running
// engine whose memory cache is too small to hold results, so that every
// lookup goes to the disk: every tree still resolves right, the disk
// cache turns itself off, and the outage is one log line (the cache's)
// with the engine's own lines at Debug.
func TestDiskCacheDamagedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cacheLog, engineLog := &levelRecorder{}, &levelRecorder{}
	d, err := cache.OpenDiskWith(dir, cache.DiskOptions{MaxBytes: 1 << 20, Logger: slog.New(cacheLog)})
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Config{Memory: cache.NewMemory(1), Secondary: d, Logger: slog.New(engineLog)})
	trees, sums := fullTrees(40, 0)
	resolveAll(t, e, trees, sums)
	resolveAll(t, e, trees, sums)
	if n := e.Calls("add+full"); n != 40 {
		t.Fatalf("add+full ran %d times; want the second round from the disk", n)
	}

	ps := os.Getpagesize()
	f, err := os.OpenFile(d.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	junk := make([]byte, st.Size()-int64(2*ps))
	rng := rand.New(rand.NewPCG(2, 2))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	if _, err := f.WriteAt(junk, int64(2*ps)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	resolveAll(t, e, trees, sums) // old trees: the disk fails, they are computed again
	more, moreSums := fullTrees(40, 1)
	resolveAll(t, e, more, moreSums)
	s := e.Stats()
	if s.Failures != 0 || s.Secondary == nil || !s.Secondary.Down || s.Secondary.Outages != 1 {
		t.Fatalf("stats %+v / %+v: want no failed resolution and the disk cache off", s, s.Secondary)
	}
	if n := e.Calls("add+full"); n != 120 {
		t.Errorf("add+full ran %d times, want 120 (40, then 40 again and 40 new after the damage)", n)
	}
	if n := cacheLog.count(slog.LevelInfo); n != 1 {
		t.Errorf("the disk cache logged %d lines for one outage", n)
	}
	if n := engineLog.count(slog.LevelInfo); n != 0 {
		t.Errorf("the engine logged %d lines above Debug for an outage the cache reported", n)
	}
}
