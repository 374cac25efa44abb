package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DefaultDiskBytes is the bound of a Disk cache opened with maxBytes <= 0.
const DefaultDiskBytes int64 = 10 << 30

// DiskFileName is the name of a Disk cache's file in its directory.
const DiskFileName = "arbor-cache.bolt"

// diskEntryOverhead is what a Disk cache charges per entry on top of the
// key and the framed value: its two index records and bbolt's per-element
// headers, roughly.
const diskEntryOverhead = 128

// accessFlushThreshold is how many distinct keys' access times a Disk keeps
// in memory before writing them out in the background.
const accessFlushThreshold = 4096

// Bucket names and layout:
//
//	entries: key (32)           → framed value (see frame.go)
//	access:  key (32)           → access stamp (8) | charged size (8)
//	lru:     stamp (8) | key (32) → empty; iterated oldest first to evict
//	meta:    "usage"            → entries (8) | bytes (8)
//
// All integers are big-endian. A stamp is a nanosecond Unix time made
// strictly increasing, so lru keys sort by access order.
var (
	bucketEntries = []byte("entries")
	bucketAccess  = []byte("access")
	bucketLRU     = []byte("lru")
	bucketMeta    = []byte("meta")
	metaUsage     = []byte("usage")
)

// Disk is an embedded on-disk cache: one bbolt file in a directory, kept
// across restarts. Each entry is framed with a CRC-32C over key and value; an
// entry that fails its check is a miss, is deleted and counted in
// Stats.Corrupt, and leaves every other entry in place.
//
// When a Put takes the charged total past the bound, the least recently used
// entries are evicted. Gets record their access times in memory and write
// them out in batches — with the next Put, in the background once
// accessFlushThreshold keys have piled up, and at Close — so a hit costs a
// read transaction only, yet eviction, which happens inside a Put, always
// sees every access made before it. Access times not yet written out are
// lost if the process dies; the entries are not.
//
// The bound counts keys, framed values and a per-entry overhead; the file is
// larger by bbolt's page slack, and bbolt reuses freed pages but never
// shrinks the file.
//
// A damaged file never takes the process down. OpenDisk checks the file's
// structure before bbolt opens it and moves a damaged one aside (see
// OpenDiskWith). If bbolt fails while the cache runs — an I/O error, or a
// panic or memory fault on a page damaged since — the operation returns an
// error wrapping ErrUnavailable, the cache logs one line and turns itself
// off: from then on Get is a miss and Put a no-op, counted in Stats.Skips,
// until the process opens the cache again.
//
// A directory holds one Disk at a time: a second OpenDisk of the same
// directory, in this process or another, fails after a second.
type Disk struct {
	db       *bolt.DB
	path     string
	maxBytes int64
	log      *slog.Logger
	closed   atomic.Bool
	down     atomic.Bool // off after a failure

	mu        sync.Mutex // guards the fields below
	pending   map[Key]int64
	flushAt   int // len(pending) that starts a background flush
	lastStamp int64
	flushing  bool
	wg        sync.WaitGroup // the background flush, if any

	hits, misses, puts, evictions, corrupt atomic.Int64
	failures, skips, outages               atomic.Int64
	entries, bytes                         atomic.Int64 // mirror meta/usage
}

var _ Cache = (*Disk)(nil)

// DefaultDir returns the per-user directory for Arbor's disk cache:
// os.UserCacheDir()/arbor.
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache: no user cache directory: %w", err)
	}
	return filepath.Join(d, "arbor"), nil
}

// Get returns a copy of the value stored under k.
func (d *Disk) Get(ctx context.Context, k Key) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if d.closed.Load() {
		return nil, false, ErrClosed
	}
	if d.down.Load() {
		d.skips.Add(1)
		return nil, false, nil
	}
	var v []byte
	corrupt := false
	err := d.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries).Get(k[:])
		if b == nil {
			return nil
		}
		val, err := decodeEntry(&k, b)
		if err != nil {
			corrupt = true
			return nil
		}
		v = make([]byte, len(val)) // b lives only as long as the transaction
		copy(v, val)
		return nil
	})
	if err != nil {
		return nil, false, d.fail("get", err)
	}
	if corrupt {
		d.removeCorrupt(k)
	}
	if v == nil {
		d.misses.Add(1)
		return nil, false, nil
	}
	d.touch(k)
	d.hits.Add(1)
	return v, true, nil
}

// Put stores v under k and evicts least recently used entries past the
// bound. A value whose charge alone exceeds the bound is not stored, and
// any older value under k is removed.
func (d *Disk) Put(ctx context.Context, k Key, v []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.closed.Load() {
		return ErrClosed
	}
	if d.down.Load() {
		d.skips.Add(1)
		return nil
	}
	frame := encodeEntry(&k, v)
	size := diskEntrySize(len(frame))
	pending := d.takePending()
	d.mu.Lock()
	stamp := d.nextStampLocked()
	d.mu.Unlock()
	var evicted int64
	err := d.update(func(tx *bolt.Tx) error {
		u := readUsage(tx)
		if err := applyAccess(tx, pending); err != nil {
			return err
		}
		if _, err := deleteEntry(tx, k, &u); err != nil {
			return err
		}
		if size <= d.maxBytes {
			if err := tx.Bucket(bucketEntries).Put(k[:], frame); err != nil {
				return err
			}
			if err := putAccess(tx, k, stamp, size); err != nil {
				return err
			}
			u.entries++
			u.bytes += size
		}
		var err error
		if evicted, err = d.evict(tx, &u); err != nil {
			return err
		}
		return d.writeUsage(tx, u)
	})
	if err != nil {
		return d.fail("put", err)
	}
	d.puts.Add(1)
	d.evictions.Add(evicted)
	return nil
}

// Stats returns the cache's counters. Entries and Bytes are those of the
// last committed write.
func (d *Disk) Stats() Stats {
	return Stats{
		Hits:      d.hits.Load(),
		Misses:    d.misses.Load(),
		Puts:      d.puts.Load(),
		Evictions: d.evictions.Load(),
		Corrupt:   d.corrupt.Load(),
		Entries:   d.entries.Load(),
		Bytes:     d.bytes.Load(),
		MaxBytes:  d.maxBytes,
		Failures:  d.failures.Load(),
		Skips:     d.skips.Load(),
		Outages:   d.outages.Load(),
		Down:      d.down.Load(),
	}
}

// Path returns the cache file's path.
func (d *Disk) Path() string { return d.path }

// Close writes out the access times still held in memory and closes the
// file. It waits for Gets and Puts in progress.
func (d *Disk) Close() error {
	d.mu.Lock()
	if d.closed.Swap(true) {
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	d.wg.Wait()
	var err error
	if !d.down.Load() {
		if ferr := d.flushAccess(); ferr != nil {
			d.down.Store(true) // so that closeDB allows for a lock the failure left taken
			err = fmt.Errorf("%w: disk %s: write access times: %w", ErrUnavailable, d.path, ferr)
		}
	}
	return errors.Join(err, d.closeDB())
}

// closeDB closes the bbolt handle. After a failure inside bbolt, a
// transaction that panicked may have left its locks taken, and bbolt's
// Close would wait for them forever: then it gets a second.
func (d *Disk) closeDB() error {
	if !d.down.Load() {
		return d.db.Close()
	}
	done := make(chan error, 1)
	go func() { done <- closeBolt(d.db) }()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("cache: disk %s: close after a failure did not finish within a second; abandoned", d.path)
	}
}

// view runs fn in a read transaction. A panic or memory fault inside
// bbolt — a page damaged while the file is open — becomes an error.
func (d *Disk) view(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: bbolt panicked: %v", errDamaged, p)
		}
	}()
	return d.db.View(fn)
}

// update runs fn in a write transaction and commits it. A panic or fault
// inside bbolt becomes an error, as in view. The transaction is managed
// here rather than by bbolt's Update, whose rollback after a panic rescans
// the whole file in a goroutine of bbolt's own — where the damaged page
// that caused the panic would crash the process. (bbolt's Commit still
// does that rescan when a write fails; the pages it walks then are the
// committed ones, which the write did not touch.)
func (d *Disk) update(fn func(*bolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	tx, err := d.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			abandon(tx)
			err = fmt.Errorf("%w: bbolt panicked: %v", errDamaged, p)
		}
	}()
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// abandon rolls tx back without bbolt's reload of the free pages. After
// a panic, even that may panic; the cache is off by then, and Close
// allows for the locks a half-done rollback leaves.
func abandon(tx *bolt.Tx) {
	defer func() { _ = recover() }()
	_ = tx.Rollback()
}

// fail turns a failed operation into ErrClosed or, the first time, turns
// the cache off with one log line.
func (d *Disk) fail(op string, err error) error {
	if d.closed.Load() || errors.Is(err, bolt.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	d.failures.Add(1)
	if d.down.CompareAndSwap(false, true) {
		d.outages.Add(1)
		d.log.Error("cache: disk cache failed and is off until it is opened again; requests compute their results",
			"path", d.path, "op", op, "err", err)
	}
	return fmt.Errorf("%w: disk %s: %s: %w", ErrUnavailable, d.path, op, err)
}

func diskEntrySize(frameLen int) int64 {
	return int64(len(Key{})) + int64(frameLen) + diskEntryOverhead
}

// nextStampLocked returns a nanosecond time later than every stamp handed
// out before, in this process or (through lastStamp's start value) the
// file's earlier lives.
func (d *Disk) nextStampLocked() int64 {
	now := time.Now().UnixNano()
	if now <= d.lastStamp {
		now = d.lastStamp + 1
	}
	d.lastStamp = now
	return now
}

// touch records an access to k, to be written out later.
func (d *Disk) touch(k Key) {
	d.mu.Lock()
	if d.closed.Load() {
		d.mu.Unlock()
		return
	}
	d.pending[k] = d.nextStampLocked()
	if len(d.pending) >= d.flushAt && !d.flushing {
		d.flushing = true
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			// Access times are advisory: a lost batch only blurs LRU order.
			if err := d.flushAccess(); err != nil {
				_ = d.fail("write access times", err)
			}
			d.mu.Lock()
			d.flushing = false
			d.mu.Unlock()
		}()
	}
	d.mu.Unlock()
}

// takePending returns the recorded accesses and starts a new batch.
func (d *Disk) takePending() map[Key]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		return nil
	}
	p := d.pending
	d.pending = make(map[Key]int64, len(p))
	return p
}

func (d *Disk) flushAccess() error {
	p := d.takePending()
	if len(p) == 0 {
		return nil
	}
	return d.update(func(tx *bolt.Tx) error { return applyAccess(tx, p) })
}

// removeCorrupt deletes k's entry if it still fails its check.
func (d *Disk) removeCorrupt(k Key) {
	removed := false
	err := d.update(func(tx *bolt.Tx) error {
		removed = false
		b := tx.Bucket(bucketEntries).Get(k[:])
		if b == nil {
			return nil
		}
		if _, err := decodeEntry(&k, b); err == nil {
			return nil // replaced by a good value meanwhile
		}
		u := readUsage(tx)
		if _, err := deleteEntry(tx, k, &u); err != nil {
			return err
		}
		removed = true
		return d.writeUsage(tx, u)
	})
	if removed || err != nil {
		// A corrupt entry that could not be deleted (the cache is closing,
		// say) is still counted: it was seen, and it was a miss.
		d.corrupt.Add(1)
	}
	if err != nil {
		_ = d.fail("remove a corrupt entry", err)
	}
}

// usage is the meta record: how many entries the file holds and the bytes
// charged for them.
type usage struct{ entries, bytes int64 }

func readUsage(tx *bolt.Tx) usage {
	b := tx.Bucket(bucketMeta).Get(metaUsage)
	if len(b) == 16 {
		return usage{int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:]))}
	}
	return countUsage(tx) // missing (a new file) or damaged
}

// countUsage counts the entries that have an access record, and their
// charged bytes.
func countUsage(tx *bolt.Tx) usage {
	var u usage
	entries := tx.Bucket(bucketEntries)
	_ = tx.Bucket(bucketAccess).ForEach(func(k, rec []byte) error {
		if len(rec) == 16 && entries.Get(k) != nil {
			u.entries++
			u.bytes += int64(binary.BigEndian.Uint64(rec[8:]))
		}
		return nil
	})
	return u
}

func (d *Disk) writeUsage(tx *bolt.Tx, u usage) error {
	if u.entries < 0 {
		u.entries = 0
	}
	if u.bytes < 0 {
		u.bytes = 0
	}
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(u.entries))
	binary.BigEndian.PutUint64(b[8:], uint64(u.bytes))
	if err := tx.Bucket(bucketMeta).Put(metaUsage, b); err != nil {
		return err
	}
	// Write transactions are serialized, so the mirrors follow commit order
	// (a failed commit leaves them off until the next write).
	d.entries.Store(u.entries)
	d.bytes.Store(u.bytes)
	return nil
}

func lruKey(stamp int64, k Key) []byte {
	b := make([]byte, 8+len(k))
	binary.BigEndian.PutUint64(b, uint64(stamp))
	copy(b[8:], k[:])
	return b
}

// putAccess writes k's access record and its lru index key.
func putAccess(tx *bolt.Tx, k Key, stamp, size int64) error {
	rec := make([]byte, 16)
	binary.BigEndian.PutUint64(rec, uint64(stamp))
	binary.BigEndian.PutUint64(rec[8:], uint64(size))
	if err := tx.Bucket(bucketAccess).Put(k[:], rec); err != nil {
		return err
	}
	return tx.Bucket(bucketLRU).Put(lruKey(stamp, k), nil)
}

// applyAccess moves each key in p that still has an entry to its recorded
// access time, if that is later than the one on file.
func applyAccess(tx *bolt.Tx, p map[Key]int64) error {
	if len(p) == 0 {
		return nil
	}
	entries, access, lru := tx.Bucket(bucketEntries), tx.Bucket(bucketAccess), tx.Bucket(bucketLRU)
	for k, stamp := range p {
		rec := access.Get(k[:])
		if len(rec) != 16 || entries.Get(k[:]) == nil {
			continue // evicted or replaced since the Get
		}
		old := int64(binary.BigEndian.Uint64(rec))
		if stamp <= old {
			continue
		}
		size := int64(binary.BigEndian.Uint64(rec[8:]))
		if err := lru.Delete(lruKey(old, k)); err != nil {
			return err
		}
		if err := putAccess(tx, k, stamp, size); err != nil {
			return err
		}
	}
	return nil
}

// deleteEntry removes k's entry and records, if any, and reports whether
// there was an entry.
func deleteEntry(tx *bolt.Tx, k Key, u *usage) (bool, error) {
	entries, access := tx.Bucket(bucketEntries), tx.Bucket(bucketAccess)
	frame := entries.Get(k[:])
	rec := access.Get(k[:])
	if len(rec) == 16 {
		if err := tx.Bucket(bucketLRU).Delete(lruKey(int64(binary.BigEndian.Uint64(rec)), k)); err != nil {
			return false, err
		}
	}
	if frame == nil {
		if rec != nil {
			return false, access.Delete(k[:])
		}
		return false, nil
	}
	size := diskEntrySize(len(frame))
	if len(rec) == 16 {
		size = int64(binary.BigEndian.Uint64(rec[8:]))
	}
	if err := entries.Delete(k[:]); err != nil {
		return false, err
	}
	if err := access.Delete(k[:]); err != nil {
		return false, err
	}
	u.entries--
	u.bytes -= size
	return true, nil
}

// evict removes least recently used entries until u is within the bound,
// dropping lru index keys that no longer match an access record on the way.
func (d *Disk) evict(tx *bolt.Tx, u *usage) (int64, error) {
	var n int64
	c := tx.Bucket(bucketLRU).Cursor()
	access := tx.Bucket(bucketAccess)
	for u.bytes > d.maxBytes {
		lk, _ := c.First()
		if lk == nil {
			// The index ran out with the usage still over the bound: the
			// usage record was off. Count again.
			*u = countUsage(tx)
			break
		}
		valid := len(lk) == 8+len(Key{})
		var k Key
		var stamp uint64
		if valid {
			stamp = binary.BigEndian.Uint64(lk)
			copy(k[:], lk[8:])
		}
		if err := c.Delete(); err != nil {
			return n, err
		}
		if !valid {
			continue
		}
		rec := access.Get(k[:])
		if len(rec) != 16 || binary.BigEndian.Uint64(rec) != stamp {
			continue // a stale index key
		}
		found, err := deleteEntry(tx, k, u)
		if err != nil {
			return n, err
		}
		if found {
			n++
		}
	}
	return n, nil
}
