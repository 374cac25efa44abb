package cache

import (
	"context"
	"errors"
)

// Key is a content key: the SHA-256 of a request tree, computed by package
// request. The cache trusts it to address its value; it never rehashes.
type Key = [32]byte

// Cache is a content-addressed store of encoded results. Implementations are
// safe for concurrent use.
type Cache interface {
	// Get returns the value stored under k. A miss is (nil, false, nil);
	// a corrupt entry is a miss too. The returned slice must not be
	// modified.
	Get(ctx context.Context, k Key) ([]byte, bool, error)
	// Put stores v under k, replacing any earlier value. The cache may keep
	// v itself, so the caller must not modify v afterwards.
	Put(ctx context.Context, k Key, v []byte) error
	// Stats returns a snapshot of the cache's counters.
	Stats() Stats
	// Close releases the cache's resources. Get and Put fail with
	// ErrClosed afterwards. Close is idempotent.
	Close() error
}

// Stats is a snapshot of a cache's counters. Hits, Misses, Puts, Evictions,
// Corrupt, Failures, Skips and Outages count events since the cache was
// created or opened; Entries, Bytes, MaxBytes and Down describe it now.
// Bytes counts what the cache charges against MaxBytes, which includes a
// per-entry overhead. A field a cache cannot know (a Redis server's
// contents, say) is zero.
//
// Failures, Skips, Outages and Down describe a secondary tier in trouble
// (Disk, Redis; Tiered reports its secondary's): such a tier answers a
// miss rather than wait or fail, and says so here instead of in latency.
type Stats struct {
	Hits      int64 // Gets that found a value
	Misses    int64 // Gets that found none (corrupt entries included, skipped ones not)
	Puts      int64 // successful Puts
	Evictions int64 // entries dropped to stay within MaxBytes
	Corrupt   int64 // entries that failed their checksum and were removed
	Entries   int64 // entries held now
	Bytes     int64 // bytes charged now
	MaxBytes  int64 // the byte bound
	Failures  int64 // operations that failed: I/O error, timeout, a panic in the store
	Skips     int64 // Gets and Puts not attempted because the tier was down (a miss, a dropped value)
	Outages   int64 // times the tier went down
	Down      bool  // the tier is down now: skipping operations until it recovers
}

// ErrClosed is returned by Get and Put on a closed cache.
var ErrClosed = errors.New("cache: closed")

// ErrUnavailable is wrapped by the error of a Disk or Redis operation that
// failed for the store's sake — a timeout, a refused connection, a bbolt
// failure — rather than the caller's. The cache has logged the outage once
// and counts it in Stats; callers should take the miss and need not log
// each such error.
var ErrUnavailable = errors.New("cache: unavailable")

// ErrCorrupt is the error (wrapped with details) that the entry decoder
// returns for a stored entry that fails its framing or checksum check.
// Get never returns it: a corrupt entry is a miss.
var ErrCorrupt = errors.New("cache: corrupt entry")
