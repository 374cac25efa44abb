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

// Stats is a snapshot of a cache's counters. Hits, Misses, Puts, Evictions
// and Corrupt count events since the cache was created or opened; Entries,
// Bytes and MaxBytes describe its contents now. Bytes counts what the cache
// charges against MaxBytes, which includes a per-entry overhead. A field a
// cache cannot know (a Redis server's contents, say) is zero.
type Stats struct {
	Hits      int64 // Gets that found a value
	Misses    int64 // Gets that found none (corrupt entries included)
	Puts      int64 // successful Puts
	Evictions int64 // entries dropped to stay within MaxBytes
	Corrupt   int64 // entries that failed their checksum and were removed
	Entries   int64 // entries held now
	Bytes     int64 // bytes charged now
	MaxBytes  int64 // the byte bound
}

// ErrClosed is returned by Get and Put on a closed cache.
var ErrClosed = errors.New("cache: closed")

// ErrCorrupt is the error (wrapped with details) that the entry decoder
// returns for a stored entry that fails its framing or checksum check.
// Get never returns it: a corrupt entry is a miss.
var ErrCorrupt = errors.New("cache: corrupt entry")
