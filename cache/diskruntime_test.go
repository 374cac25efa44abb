package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// This file tests a Disk whose file is damaged while it is open: the
// operation that meets the damage fails with ErrUnavailable, the cache
// logs once and turns itself off, and nothing crashes.

// damageOpenFile overwrites every page of d's file past the meta pages
// with random bytes, behind bbolt's back (bbolt maps the file shared, so
// it sees them at once).
func damageOpenFile(t *testing.T, d *Disk, seed uint64) {
	t.Helper()
	b, err := os.ReadFile(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	ps, m := fileMeta(t, b)
	junk := make([]byte, (int(m.hwm)-2)*ps)
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	f, err := os.OpenFile(d.Path(), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(junk, int64(2*ps)); err != nil {
		t.Fatal(err)
	}
}

// openLogged opens a disk cache in dir with a recorded log.
func openLogged(t *testing.T, dir string) (*Disk, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	d, err := OpenDiskWith(dir, DiskOptions{MaxBytes: 1 << 20, Logger: slog.New(rec)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, rec
}

func fillDisk(t *testing.T, d *Disk) {
	t.Helper()
	for i := range damageEntries {
		if err := d.Put(context.Background(), key(i), value(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkOff checks that d is down after one failure and one log line, and
// that it now answers misses and drops values without errors.
func checkOff(t *testing.T, d *Disk, rec *logRecorder) {
	t.Helper()
	ctx := context.Background()
	s := d.Stats()
	if !s.Down || s.Outages != 1 || s.Failures < 1 {
		t.Fatalf("Stats after the failure = %+v, want Down, one outage", s)
	}
	for i := range 20 {
		if v, ok, err := d.Get(ctx, key(i)); ok || err != nil || v != nil {
			t.Fatalf("Get from a disk cache that is off = %v, %v, %v; want a plain miss", v, ok, err)
		}
		if err := d.Put(ctx, key(i), []byte("x")); err != nil {
			t.Fatalf("Put to a disk cache that is off: %v; want it dropped", err)
		}
	}
	if got := d.Stats(); got.Skips < 40 || got.Failures != s.Failures || got.Outages != 1 {
		t.Fatalf("Stats after skipping = %+v (before %+v)", got, s)
	}
	if recs := rec.records(slog.LevelInfo); len(recs) != 1 || recs[0].Level != slog.LevelError || recordAttr(recs[0], "path") != d.Path() {
		t.Fatalf("want one error line naming %s, got %v", d.Path(), recs)
	}
}

// checkRecovers closes d and opens its directory again: the damaged file
// is moved aside and the new cache works.
func checkRecovers(t *testing.T, d *Disk) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Logf("Close of a cache that is off: %v", err) // allowed to report the damage
	}
	d2, rec := openLogged(t, filepath.Dir(d.Path()))
	if len(must(filepath.Glob(d.Path()+damagedSuffix+"*"))) != 1 || len(rec.records(slog.LevelError)) != 1 {
		t.Fatal("the file damaged while open was not moved aside at the next open")
	}
	checkWorks(t, d2, false)
}

func TestDiskDamagedWhileOpenGet(t *testing.T) {
	ctx := context.Background()
	d, rec := openLogged(t, t.TempDir())
	fillDisk(t, d)
	damageOpenFile(t, d, 1)
	_, ok, err := d.Get(ctx, key(3))
	if ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get on a damaged file = %v, %v; want an ErrUnavailable miss", ok, err)
	}
	checkOff(t, d, rec)
	checkRecovers(t, d)
}

func TestDiskDamagedWhileOpenPut(t *testing.T) {
	ctx := context.Background()
	d, rec := openLogged(t, t.TempDir())
	fillDisk(t, d)
	damageOpenFile(t, d, 2)
	if err := d.Put(ctx, key(3), value(3, 800)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put on a damaged file = %v; want ErrUnavailable", err)
	}
	checkOff(t, d, rec)
	checkRecovers(t, d)
}

// TestDiskTruncatedWhileOpen cuts the file under bbolt's mapping: reading
// a page past the end raises SIGBUS, which must become an error.
func TestDiskTruncatedWhileOpen(t *testing.T) {
	ctx := context.Background()
	d, rec := openLogged(t, t.TempDir())
	fillDisk(t, d)
	ps := os.Getpagesize()
	if err := os.Truncate(d.Path(), int64(2*ps)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.Get(ctx, key(3)); ok || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Get past the end of the file = %v, %v; want an ErrUnavailable miss", ok, err)
	}
	checkOff(t, d, rec)
	checkRecovers(t, d)
}

// TestDiskDamagedUnderLoad damages the file while goroutines read and
// write: each operation succeeds or fails with ErrUnavailable, and the
// outage is one log line.
func TestDiskDamagedUnderLoad(t *testing.T) {
	ctx := context.Background()
	d, rec := openLogged(t, t.TempDir())
	d.flushAt = 16 // background access flushes meet the damage too
	fillDisk(t, d)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 6 {
		wg.Go(func() {
			<-start
			for i := range 300 {
				k := (i*7 + g) % damageEntries
				if i%3 == 0 {
					if err := d.Put(ctx, key(k), value(k, 500)); err != nil && !errors.Is(err, ErrUnavailable) {
						t.Errorf("Put: %v", err)
						return
					}
					continue
				}
				v, ok, err := d.Get(ctx, key(k))
				if err != nil && !errors.Is(err, ErrUnavailable) {
					t.Errorf("Get: %v", err)
					return
				}
				if ok && !bytes.Equal(v, value(k, 500)) {
					t.Errorf("key %d: a wrong value", k)
					return
				}
			}
		})
	}
	close(start)
	damageOpenFile(t, d, 3)
	wg.Wait()
	if !d.Stats().Down {
		// Every operation may have finished before the damage landed.
		if _, _, err := d.Get(ctx, key(damageEntries-1)); !errors.Is(err, ErrUnavailable) && !d.Stats().Down {
			t.Fatalf("the damage went unnoticed: %v, %+v", err, d.Stats())
		}
	}
	checkOff(t, d, rec)
	checkRecovers(t, d)
}
