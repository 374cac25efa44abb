package cache

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// This file tests that damaged cache files never stop a Disk from opening:
// truncated, garbage and page-corrupted files, found at open.

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

// records returns the records at level min or above.
func (r *logRecorder) records(min slog.Level) []slog.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []slog.Record
	for _, rec := range r.recs {
		if rec.Level >= min {
			out = append(out, rec)
		}
	}
	return out
}

func recordAttr(rec slog.Record, key string) string {
	var v string
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

const damageEntries = 60

// populatedCacheFile makes a closed cache in a new directory holding keys
// 0..damageEntries-1 with 500-byte values, and returns the directory and
// the file's bytes.
func populatedCacheFile(t testing.TB) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	d, err := OpenDisk(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range damageEntries {
		if err := d.Put(ctx, key(i), value(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 { // some access records too
		if _, ok, _ := d.Get(ctx, key(i)); !ok {
			t.Fatalf("key %d missing", i)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, DiskFileName))
	if err != nil {
		t.Fatal(err)
	}
	return dir, b
}

// fileMeta returns the page size and the meta that bbolt would use.
func fileMeta(t testing.TB, b []byte) (int, boltMeta) {
	t.Helper()
	ps := int(parseMeta(b).pageSize)
	m0, m1 := parseMeta(b), parseMeta(b[ps:])
	if m1.txid > m0.txid {
		m0 = m1
	}
	if m0.valid != nil {
		t.Fatal(m0.valid)
	}
	return ps, m0
}

// pagesOf returns the ids below the high-water mark of the pages with the
// given type flags.
func pagesOf(t testing.TB, b []byte, flags uint16) []uint64 {
	t.Helper()
	ps, m := fileMeta(t, b)
	var ids []uint64
	for id := uint64(2); id < m.hwm; id++ {
		p := b[int(id)*ps:]
		if ne.Uint64(p) == id && ne.Uint16(p[8:]) == flags {
			ids = append(ids, id)
		}
	}
	return ids
}

// pageHolding returns the id of the page that holds key i's value.
func pageHolding(t testing.TB, b []byte, i int) uint64 {
	t.Helper()
	ps, _ := fileMeta(t, b)
	off := bytes.Index(b, value(i, 500))
	if off < 0 {
		t.Fatalf("value %d not in the file", i)
	}
	return uint64(off / ps)
}

// openAfterDamage writes b as the cache file of dir and opens it; the open
// must succeed. It reports whether the file was moved aside, and checks
// that a moved-aside file holds b and was logged once.
func openAfterDamage(t *testing.T, dir string, b []byte) (*Disk, bool) {
	t.Helper()
	path := filepath.Join(dir, DiskFileName)
	for _, f := range must(filepath.Glob(path + damagedSuffix + "*")) {
		os.Remove(f)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &logRecorder{}
	d, err := OpenDiskWith(dir, DiskOptions{MaxBytes: 1 << 20, Logger: slog.New(rec)})
	if err != nil {
		t.Fatalf("OpenDisk of a damaged file: %v", err)
	}
	d.db.NoSync = true // these tests need no durability, and fsyncs are most of their time
	t.Cleanup(func() { d.Close() })
	aside := must(filepath.Glob(path + damagedSuffix + "*"))
	logged := rec.records(slog.LevelWarn)
	switch {
	case len(aside) == 0:
		if len(logged) != 0 {
			t.Errorf("file kept, yet logged %q", logged[0].Message)
		}
		return d, false
	case len(aside) > 1:
		t.Fatalf("%d files moved aside: %v", len(aside), aside)
	}
	if got, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(got, b) {
		t.Errorf("moved-aside file %s does not hold the damaged bytes (%v)", aside[0], err)
	}
	if len(logged) != 1 || recordAttr(logged[0], "moved_to") != aside[0] || recordAttr(logged[0], "path") != path {
		t.Errorf("want one log line naming %s and %s, got %d: %v", path, aside[0], len(logged), logged)
	} else if reason := recordAttr(logged[0], "reason"); reason == "" {
		t.Error("the log line gives no reason")
	}
	return d, true
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// checkWorks checks that d answers old keys correctly or not at all (all
// of them if whole), takes new ones, and, if whole or moved aside (and so
// started afresh), keeps its index straight. (Damage in a kept file's
// access records blurs LRU order, which the index check would flag.)
func checkWorks(t *testing.T, d *Disk, whole bool) {
	t.Helper()
	ctx := context.Background()
	found := 0
	for i := range damageEntries {
		v, ok, err := d.Get(ctx, key(i))
		if err != nil {
			t.Fatalf("key %d: Get: %v", i, err)
		}
		if ok && !bytes.Equal(v, value(i, 500)) {
			t.Fatalf("key %d: a wrong value from a damaged file", i)
		}
		if ok {
			found++
		}
	}
	if whole && found != damageEntries {
		t.Errorf("%d of %d entries found in a file kept whole", found, damageEntries)
	}
	for i := 1000; i < 1010; i++ {
		if err := d.Put(ctx, key(i), value(i, 700)); err != nil {
			t.Fatalf("Put after damage: %v", err)
		}
	}
	for i := 1000; i < 1010; i++ {
		if v, ok, err := d.Get(ctx, key(i)); err != nil || !ok || !bytes.Equal(v, value(i, 700)) {
			t.Fatalf("key %d put after damage: %v, %v", i, ok, err)
		}
	}
	if s := d.Stats(); s.Down || s.Failures != 0 {
		t.Fatalf("bbolt failed on a file the check let through: %+v", s)
	}
	if whole || len(must(filepath.Glob(d.Path()+damagedSuffix+"*"))) > 0 {
		d.checkIndex(t)
	}
}

// reopen closes d and opens its directory again: the file it left must
// open without being moved aside, with the entries checkWorks put.
func reopen(t *testing.T, d *Disk) {
	t.Helper()
	dir := filepath.Dir(d.Path())
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	before := len(must(filepath.Glob(d.Path() + damagedSuffix + "*")))
	d2 := openDisk(t, dir, 1<<20)
	if n := len(must(filepath.Glob(d.Path() + damagedSuffix + "*"))); n != before {
		t.Fatal("the file a recovered cache left was moved aside again")
	}
	if _, ok, _ := d2.Get(context.Background(), key(1000)); !ok {
		t.Fatal("an entry put after recovery did not survive a restart")
	}
}

func TestDiskOpensTruncatedFile(t *testing.T) {
	dir, orig := populatedCacheFile(t)
	ps, m := fileMeta(t, orig)
	inUse := int(m.hwm) * ps
	lengths := map[string]int{
		"1 byte": 1, "100 bytes": 100, "a page less one": ps - 1, "one page": ps,
		"one page and a byte": ps + 1, "two pages less one": 2*ps - 1, "two meta pages": 2 * ps,
		"mid third page": 2*ps + ps/2, "mid data": inUse / 2, "mid data page": inUse/2 + ps/3,
		"last page in use cut": inUse - ps/2,
	}
	for name, n := range lengths {
		t.Run(name, func(t *testing.T) {
			d, moved := openAfterDamage(t, dir, bytes.Clone(orig[:n]))
			if !moved {
				t.Fatalf("a file cut to %d of %d bytes in use was kept", n, inUse)
			}
			checkWorks(t, d, false)
			reopen(t, d)
		})
	}
	t.Run("empty", func(t *testing.T) {
		d, moved := openAfterDamage(t, dir, nil)
		if moved {
			t.Fatal("an empty file was moved aside; bbolt starts it afresh")
		}
		if d.Stats().Entries != 0 {
			t.Fatal("entries in an empty file")
		}
		checkWorks(t, d, false)
	})
	t.Run("slack past the pages in use", func(t *testing.T) {
		if len(orig) == inUse {
			t.Skip("no slack in this file")
		}
		d, moved := openAfterDamage(t, dir, bytes.Clone(orig[:inUse]))
		if moved {
			t.Fatal("a file cut only where no page is in use was moved aside")
		}
		checkWorks(t, d, true)
	})
}

func TestDiskOpensGarbageFile(t *testing.T) {
	dir, orig := populatedCacheFile(t)
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	ps, _ := fileMeta(t, orig)
	files := map[string][]byte{
		"random 100 bytes":            random(100),
		"random page":                 random(ps),
		"random 16 pages":             random(16 * ps),
		"random 1 MiB":                random(1 << 20),
		"zeros":                       make([]byte, 64<<10),
		"ones":                        bytes.Repeat([]byte{0xff}, 64<<10),
		"text":                        []byte(strings.Repeat("not a cache file\n", 1000)),
		"metas kept, the rest random": append(bytes.Clone(orig[:2*ps]), random(len(orig)-2*ps)...),
		"metas kept, the rest zero":   append(bytes.Clone(orig[:2*ps]), make([]byte, len(orig)-2*ps)...),
	}
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			d, moved := openAfterDamage(t, dir, b)
			if !moved {
				t.Fatal("garbage was kept as a cache file")
			}
			checkWorks(t, d, false)
			reopen(t, d)
		})
	}
}

func TestDiskOpensPageCorruptedFile(t *testing.T) {
	dir, orig := populatedCacheFile(t)
	ps, m := fileMeta(t, orig)
	leaf := pageHolding(t, orig, 7)
	branches := pagesOf(t, orig, boltBranchPage)
	if len(branches) == 0 {
		t.Fatal("no branch page in the test file")
	}
	current := int(m.txid % 2) // the meta page bbolt writes last
	at := func(page uint64, off int) int { return int(page)*ps + off }
	// Branch pages found in the file include freed ones that no tree
	// reaches any more (bbolt copies on write): damage every one, so that
	// the branch page in use is among them whatever the layout.
	inBranches := func(off int) []int {
		var offs []int
		for _, p := range branches {
			offs = append(offs, at(p, off))
		}
		return offs
	}
	cases := []struct {
		name  string
		offs  []int // bytes to flip
		moved bool  // must be moved aside (else must be kept whole)
	}{
		{"current meta page", []int{at(uint64(current), 16+20)}, false}, // falls back to the other
		{"older meta page", []int{at(uint64(1-current), 16+8)}, false},
		{"both meta pages", []int{at(0, 16+40), at(1, 16+40)}, true},
		{"both meta checksums", []int{at(0, 16+60), at(1, 16+60)}, true},
		{"leaf page id", []int{at(leaf, 0)}, true},
		{"leaf page type", []int{at(leaf, 8)}, true},
		{"leaf page count", []int{at(leaf, 11)}, true},
		{"leaf page overflow", []int{at(leaf, 15)}, true},
		{"leaf element position", []int{at(leaf, 16+5)}, true},
		{"leaf element key size", []int{at(leaf, 16+16+10)}, true},
		{"branch page id", inBranches(1), true},
		{"branch element child", inBranches(16 + 8), true},
		{"branch element child, high byte", inBranches(16 + 15), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(orig)
			for _, off := range c.offs {
				b[off] ^= 0x5a
			}
			d, moved := openAfterDamage(t, dir, b)
			if moved != c.moved {
				t.Fatalf("moved aside: %v, want %v", moved, c.moved)
			}
			// A kept file lost at most the last transaction to a meta page.
			checkWorks(t, d, !moved && !strings.Contains(c.name, "current meta"))
			reopen(t, d)
		})
	}
	t.Run("value bytes", func(t *testing.T) {
		// Structure intact, one entry's checksum fails: that entry alone
		// is a miss.
		b := bytes.Clone(orig)
		off := bytes.Index(b, value(7, 500))
		b[off+250] ^= 0x01
		d, moved := openAfterDamage(t, dir, b)
		if moved {
			t.Fatal("a file with one bad value was moved aside")
		}
		if _, ok, _ := d.Get(context.Background(), key(7)); ok {
			t.Fatal("the damaged value was returned")
		}
		if s := d.Stats(); s.Corrupt != 1 {
			t.Fatalf("Stats = %+v, want Corrupt 1", s)
		}
		for i := range damageEntries {
			if _, ok, _ := d.Get(context.Background(), key(i)); !ok && i != 7 {
				t.Fatalf("key %d lost beside the damaged one", i)
			}
		}
		checkWorks(t, d, false)
	})
}

// TestDiskOpensRandomlyDamagedFiles flips random bytes of the pages in use
// of a real cache file, many times over: every open must succeed, and
// bbolt must never fail on a file that the check kept.
func TestDiskOpensRandomlyDamagedFiles(t *testing.T) {
	dir, orig := populatedCacheFile(t)
	ps, m := fileMeta(t, orig)
	inUse := int(m.hwm) * ps
	rng := rand.New(rand.NewPCG(3, 4))
	n := 100
	if testing.Short() {
		n = 20
	}
	var moved, kept int
	for i := range n {
		b := bytes.Clone(orig)
		var flips [][2]int
		for range 1 + rng.IntN(6) {
			off, x := rng.IntN(inUse), 1+rng.IntN(255)
			b[off] ^= byte(x)
			flips = append(flips, [2]int{off, x})
		}
		ok := t.Run("", func(t *testing.T) {
			d, m := openAfterDamage(t, dir, b)
			if m {
				moved++
			} else {
				kept++
			}
			checkWorks(t, d, false)
		})
		if !ok {
			t.Fatalf("iteration %d failed; (offset, xor) flips of the %d-byte file: %v", i, len(b), flips)
		}
	}
	t.Logf("%d damaged files moved aside, %d kept (damage in values or free pages)", moved, kept)
	if moved == 0 || kept == 0 {
		t.Errorf("moved %d, kept %d: want some of each", moved, kept)
	}
}

// FuzzDiskFile opens a real cache file with fuzzed bytes written over it
// (at a fuzzed offset) and cut to a fuzzed length: the open must succeed,
// the cache must work, and bbolt must not fail on a file the check kept.
func FuzzDiskFile(f *testing.F) {
	dir, orig := populatedCacheFile(f)
	ps := int(parseMeta(orig).pageSize)
	f.Add(uint32(0), []byte{}, uint32(len(orig)))
	f.Add(uint32(16), []byte{0xff}, uint32(len(orig)))
	f.Add(uint32(ps+16+40), []byte{1, 2, 3}, uint32(len(orig)))
	f.Add(uint32(3*ps), []byte{9, 9, 9, 9, 9, 9, 9, 9}, uint32(len(orig)))
	f.Add(uint32(4*ps+16), []byte{0, 0, 0, 0, 0xff, 0xff}, uint32(len(orig)))
	f.Add(uint32(0), []byte{}, uint32(3*ps+100))
	f.Fuzz(func(t *testing.T, off uint32, patch []byte, length uint32) {
		b := bytes.Clone(orig)
		if int(off) < len(b) {
			copy(b[off:], patch)
		}
		b = b[:min(int(length), len(b))]
		sub := filepath.Join(dir, "fuzz")
		os.RemoveAll(sub)
		if err := os.MkdirAll(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		d, _ := openAfterDamage(t, sub, b)
		checkWorks(t, d, false)
		d.Close()
	})
}

func TestDiskMovedAsideFilesBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DiskFileName)
	for i := range 5 {
		if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := OpenDisk(dir, 0)
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	aside := must(filepath.Glob(path + damagedSuffix + "*"))
	if len(aside) != damagedKept {
		t.Fatalf("%d damaged files kept, want %d: %v", len(aside), damagedKept, aside)
	}
	if !slices.IsSorted(aside) {
		t.Fatal("unsorted glob")
	}
}

// TestDiskCheckAcceptsWhatBboltWrites runs a cache through replacements,
// evictions, access flushes and reopenings, with values that span several
// pages and values smaller than a key: the check must pass every file that
// bbolt writes, or good caches would be thrown away.
func TestDiskCheckAcceptsWhatBboltWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, DiskFileName)
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := []int{0, 1, 40, 500, 3000, 9000, 40000}
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	for round := range rounds {
		d, err := OpenDisk(dir, 600<<10)
		if err != nil {
			t.Fatal(err)
		}
		d.flushAt = 32
		d.db.NoSync = true
		for range 300 {
			k := rng.IntN(400)
			if rng.IntN(3) == 0 {
				if _, _, err := d.Get(ctx, key(k)); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := d.Put(ctx, key(k), value(k, sizes[rng.IntN(len(sizes))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := checkBoltFile(path); err != nil {
			t.Fatalf("round %d: the check rejects a file bbolt wrote: %v", round, err)
		}
		if s := d.Stats(); s.Evictions == 0 && round > 2 {
			t.Fatalf("round %d: no evictions (%+v): the test does not exercise deletes", round, s)
		}
	}
	if aside := must(filepath.Glob(path + damagedSuffix + "*")); len(aside) != 0 {
		t.Fatalf("good files moved aside: %v", aside)
	}
}
