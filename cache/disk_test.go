package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func openDisk(t *testing.T, dir string, maxBytes int64) *Disk {
	t.Helper()
	d, err := OpenDisk(dir, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// has reports whether d holds an entry for k, without touching it.
func (d *Disk) has(t *testing.T, k Key) bool {
	t.Helper()
	found := false
	if err := d.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bucketEntries).Get(k[:]) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return found
}

// checkIndex verifies the invariants between d's buckets: every entry has
// one access record and one lru key that match, and the usage record adds
// them up.
func (d *Disk) checkIndex(t *testing.T) {
	t.Helper()
	err := d.db.View(func(tx *bolt.Tx) error {
		entries, access, lru := tx.Bucket(bucketEntries), tx.Bucket(bucketAccess), tx.Bucket(bucketLRU)
		var u usage
		err := entries.ForEach(func(k, frame []byte) error {
			rec := access.Get(k)
			if len(rec) != 16 {
				t.Errorf("entry %x has no access record", k[:4])
				return nil
			}
			if lru.Get(lruKey(int64(binary.BigEndian.Uint64(rec)), Key(k))) == nil {
				t.Errorf("entry %x has no lru key", k[:4])
			}
			if size := int64(binary.BigEndian.Uint64(rec[8:])); size != diskEntrySize(len(frame)) {
				t.Errorf("entry %x: charged %d, want %d", k[:4], size, diskEntrySize(len(frame)))
			}
			u.entries++
			u.bytes += diskEntrySize(len(frame))
			return nil
		})
		if err != nil {
			return err
		}
		if n := access.Stats().KeyN; n != int(u.entries) {
			t.Errorf("%d access records for %d entries", n, u.entries)
		}
		if n := lru.Stats().KeyN; n != int(u.entries) {
			t.Errorf("%d lru keys for %d entries", n, u.entries)
		}
		if got := readUsage(tx); got != u {
			t.Errorf("usage record %+v, counted %+v", got, u)
		}
		if s := d.Stats(); s.Entries != u.entries || s.Bytes != u.bytes {
			t.Errorf("Stats %+v, counted %+v", s, u)
		}
		if u.bytes > d.maxBytes {
			t.Errorf("%d bytes held, over the bound %d", u.bytes, d.maxBytes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDiskHitMissStats(t *testing.T) {
	ctx := context.Background()
	d := openDisk(t, t.TempDir(), 1<<20)
	if v, ok, err := d.Get(ctx, key(1)); v != nil || ok || err != nil {
		t.Fatalf("empty cache: Get = %v, %v, %v; want a miss", v, ok, err)
	}
	if err := d.Put(ctx, key(1), []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key(2), []byte{}); err != nil {
		t.Fatal(err)
	}
	v, ok, err := d.Get(ctx, key(1))
	if err != nil || !ok || string(v) != "one" {
		t.Fatalf("Get = %q, %v, %v; want one", v, ok, err)
	}
	v, ok, err = d.Get(ctx, key(2))
	if err != nil || !ok || v == nil || len(v) != 0 {
		t.Fatalf("Get of an empty value = %#v, %v, %v; want a non-nil empty hit", v, ok, err)
	}
	if err := d.Put(ctx, key(1), []byte("uno")); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := d.Get(ctx, key(1)); string(v) != "uno" {
		t.Fatalf("after replace Get = %q, want uno", v)
	}
	want := Stats{Hits: 3, Misses: 1, Puts: 3, Entries: 2,
		Bytes: diskEntrySize(frameHeaderSize+3) + diskEntrySize(frameHeaderSize), MaxBytes: 1 << 20}
	if s := d.Stats(); s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
	d.checkIndex(t)
}

func TestDiskDefaults(t *testing.T) {
	d := openDisk(t, filepath.Join(t.TempDir(), "made", "by", "OpenDisk"), 0)
	if got := d.Stats().MaxBytes; got != DefaultDiskBytes {
		t.Fatalf("MaxBytes = %d, want %d", got, DefaultDiskBytes)
	}
	if filepath.Base(d.Path()) != DiskFileName {
		t.Fatalf("Path = %s", d.Path())
	}
	dir, err := DefaultDir()
	if err != nil {
		t.Skipf("no user cache directory here: %v", err)
	}
	if filepath.Base(dir) != "arbor" || !filepath.IsAbs(dir) {
		t.Fatalf("DefaultDir = %s", dir)
	}
}

func TestDiskReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d, err := OpenDisk(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := d.Put(ctx, key(i), value(i, 100*i)); err != nil {
			t.Fatal(err)
		}
	}
	before := d.Stats()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Get(ctx, key(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := d.Put(ctx, key(1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	d = openDisk(t, dir, 1<<20)
	if s := d.Stats(); s.Entries != 10 || s.Bytes != before.Bytes {
		t.Fatalf("reopened Stats = %+v; before close %+v", s, before)
	}
	for i := range 10 {
		v, ok, err := d.Get(ctx, key(i))
		if err != nil || !ok || !bytes.Equal(v, value(i, 100*i)) {
			t.Fatalf("key %d after reopen: %v, %v", i, ok, err)
		}
	}
	d.checkIndex(t)
}

func TestDiskInUse(t *testing.T) {
	dir := t.TempDir()
	openDisk(t, dir, 0)
	if _, err := OpenDisk(dir, 0); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second OpenDisk of one directory: %v, want an in-use error", err)
	}
}

// lruFixture opens a disk cache that holds exactly four entries of 100-byte
// values and puts keys 0..3 into it, in that order.
func lruFixture(t *testing.T, dir string) *Disk {
	t.Helper()
	d := openDisk(t, dir, 4*diskEntrySize(frameHeaderSize+100))
	for i := range 4 {
		if err := d.Put(context.Background(), key(i), value(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func wantHeld(t *testing.T, d *Disk, held, gone []int) {
	t.Helper()
	for _, i := range held {
		if !d.has(t, key(i)) {
			t.Errorf("key %d was evicted, want it held", i)
		}
	}
	for _, i := range gone {
		if d.has(t, key(i)) {
			t.Errorf("key %d is held, want it evicted", i)
		}
	}
}

func TestDiskLRUOrder(t *testing.T) {
	ctx := context.Background()
	d := lruFixture(t, t.TempDir())
	// Access 0 and 2: the least recently used are now 1, then 3.
	for _, i := range []int{2, 0} {
		if _, ok, _ := d.Get(ctx, key(i)); !ok {
			t.Fatalf("key %d missing", i)
		}
	}
	if err := d.Put(ctx, key(4), value(4, 100)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{0, 2, 3, 4}, []int{1})
	if err := d.Put(ctx, key(5), value(5, 100)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{0, 2, 4, 5}, []int{1, 3})
	// 2 was accessed before 0, and both before 4 and 5 were put.
	if err := d.Put(ctx, key(6), value(6, 100)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{0, 4, 5, 6}, []int{1, 2, 3})
	if got := d.Stats().Evictions; got != 3 {
		t.Fatalf("Evictions = %d, want 3", got)
	}
	// Replacing a value refreshes it too.
	if err := d.Put(ctx, key(0), value(0, 100)); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key(7), value(7, 100)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{0, 5, 6, 7}, []int{4})
	d.checkIndex(t)
}

func TestDiskLRUAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := lruFixture(t, dir)
	if _, ok, _ := d.Get(ctx, key(0)); !ok {
		t.Fatal("key 0 missing")
	}
	if err := d.Close(); err != nil { // writes the access to key 0 out
		t.Fatal(err)
	}
	d = openDisk(t, dir, 4*diskEntrySize(frameHeaderSize+100))
	if err := d.Put(ctx, key(4), value(4, 100)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{0, 2, 3, 4}, []int{1})
	d.checkIndex(t)
}

func TestDiskReopenSmallerBound(t *testing.T) {
	dir := t.TempDir()
	d := lruFixture(t, dir)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openDisk(t, dir, 2*diskEntrySize(frameHeaderSize+100))
	wantHeld(t, d, []int{2, 3}, []int{0, 1})
	if s := d.Stats(); s.Entries != 2 || s.Evictions != 2 {
		t.Fatalf("Stats = %+v, want 2 entries after 2 evictions", s)
	}
	d.checkIndex(t)
}

func TestDiskOversized(t *testing.T) {
	ctx := context.Background()
	d := openDisk(t, t.TempDir(), 1024)
	if err := d.Put(ctx, key(1), []byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key(2), []byte("small")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, key(1), make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{2}, []int{1})
	if got := d.Stats().Evictions; got != 0 {
		t.Fatalf("Evictions = %d: an oversized value must not push others out", got)
	}
	d.checkIndex(t)
}

func TestDiskContextDone(t *testing.T) {
	d := openDisk(t, t.TempDir(), 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := d.Get(ctx, key(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get: %v, want context.Canceled", err)
	}
	if err := d.Put(ctx, key(1), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: %v, want context.Canceled", err)
	}
}

// TestDiskCorruption damages one stored entry through a second bbolt handle
// while the cache is closed, as a bad disk or a torn write might.
func TestDiskCorruption(t *testing.T) {
	damage := map[string]func(b []byte) []byte{
		"value bit":    func(b []byte) []byte { b[frameHeaderSize+10] ^= 0x04; return b },
		"checksum":     func(b []byte) []byte { b[10]++; return b },
		"length":       func(b []byte) []byte { b[5] = 1; return b },
		"version":      func(b []byte) []byte { b[0] = 0; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)/2] },
		"header only":  func(b []byte) []byte { return b[:frameHeaderSize] },
		"empty":        func(b []byte) []byte { return b[:0] },
		"other's body": func(b []byte) []byte { return encodeEntry(ptr(key(99)), value(0, 500)) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			d, err := OpenDisk(dir, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := d.Put(ctx, key(i), value(i, 500)); err != nil {
					t.Fatal(err)
				}
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}

			db, err := bolt.Open(filepath.Join(dir, DiskFileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			k := key(1)
			err = db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketEntries)
				return b.Put(k[:], f(bytes.Clone(b.Get(k[:]))))
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			d = openDisk(t, dir, 1<<20)
			if v, ok, err := d.Get(ctx, key(1)); ok || err != nil || v != nil {
				t.Fatalf("corrupt entry: Get = %v, %v, %v; want a miss", v, ok, err)
			}
			if s := d.Stats(); s.Corrupt != 1 || s.Misses != 1 || s.Entries != 2 {
				t.Fatalf("Stats = %+v, want Corrupt 1, Misses 1, Entries 2", s)
			}
			for _, i := range []int{0, 2} {
				v, ok, err := d.Get(ctx, key(i))
				if err != nil || !ok || !bytes.Equal(v, value(i, 500)) {
					t.Fatalf("key %d beside the corrupt one: %v, %v", i, ok, err)
				}
			}
			// Removed, so a second Get is a plain miss.
			if _, ok, _ := d.Get(ctx, key(1)); ok || d.Stats().Corrupt != 1 || d.has(t, key(1)) {
				t.Fatalf("corrupt entry not removed: Stats = %+v", d.Stats())
			}
			if err := d.Put(ctx, key(1), []byte("again")); err != nil {
				t.Fatal(err)
			}
			if v, ok, _ := d.Get(ctx, key(1)); !ok || string(v) != "again" {
				t.Fatalf("Put after corruption: Get = %q, %v", v, ok)
			}
			d.checkIndex(t)
		})
	}
}

// TestDiskDamagedMeta loses the usage record and the index keys; the cache
// counts again and evicts what it can.
func TestDiskDamagedMeta(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	d := lruFixture(t, dir)
	before := d.Stats()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, DiskFileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put(metaUsage, []byte("junk")); err != nil {
			return err
		}
		return tx.Bucket(bucketLRU).Put([]byte("not an lru key"), nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	d = openDisk(t, dir, 4*diskEntrySize(frameHeaderSize+100))
	if s := d.Stats(); s.Entries != before.Entries || s.Bytes != before.Bytes {
		t.Fatalf("recounted Stats = %+v, want %+v", s, before)
	}
	if err := d.Put(ctx, key(4), value(4, 100)); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, d, []int{1, 2, 3, 4}, []int{0})
}

func TestDiskBackgroundAccessFlush(t *testing.T) {
	ctx := context.Background()
	d := openDisk(t, t.TempDir(), 1<<20)
	for i := range 20 {
		if err := d.Put(ctx, key(i), value(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	d.flushAt = 8
	for i := range 20 {
		if _, ok, _ := d.Get(ctx, key(i)); !ok {
			t.Fatalf("key %d missing", i)
		}
	}
	d.wg.Wait()
	d.mu.Lock()
	left := len(d.pending)
	d.mu.Unlock()
	if left >= 20 {
		t.Fatalf("%d accesses pending: no background flush ran", left)
	}
	d.checkIndex(t)
}

func TestDiskConcurrent(t *testing.T) {
	ctx := context.Background()
	d := openDisk(t, t.TempDir(), 40*diskEntrySize(frameHeaderSize+300))
	d.flushAt = 16
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				k := rng.IntN(100)
				if rng.IntN(4) == 0 {
					if err := d.Put(ctx, key(k), value(k, 300)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if v, ok, err := d.Get(ctx, key(k)); err != nil || ok && !bytes.Equal(v, value(k, 300)) {
					t.Errorf("key %d: Get = %v, %v", k, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := d.Stats()
	if s.Puts+s.Hits+s.Misses != 4*300 || s.Hits == 0 || s.Evictions == 0 {
		t.Fatalf("Stats = %+v", s)
	}
	d.checkIndex(t)
}

func TestDiskBadDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDisk(f, 0); err == nil {
		t.Fatal("OpenDisk of a regular file's path succeeded")
	}
}
