// Package cache holds the content-addressed result caches of Arbor's
// request-tree resolver.
//
// A cache maps a [Key] — the SHA-256 content key of a request, computed by
// package request — to the msgpack-encoded result of resolving it. Every
// cache implements [Cache]:
//
//   - [Memory] is a byte-bounded in-process cache (the "+mem" level),
//     built on otter's W-TinyLFU policy.
//   - [Disk] is an embedded on-disk cache in one bbolt file that survives
//     restarts, evicts the least recently used entries past a byte bound and
//     checksums every entry.
//   - [Redis] stores entries in a Redis server shared by a cluster.
//   - [Tiered] puts a [Memory] in front of a secondary cache (the "+full"
//     level).
//   - [Layered] makes two secondary caches one, the near first: a Disk in
//     front of a shared Redis, so that a Redis outage leaves the disk.
//
// Disk and Redis frame every value with a CRC-32C over the key and the value:
// an entry that fails its check is a miss, is removed, and is counted in
// [Stats].Corrupt; it never takes other entries with it.
//
// A secondary tier in trouble costs misses, not crashes, errors or
// latency. [OpenDisk] checks the file's structure before bbolt walks it and
// moves a damaged file aside (logged), starting empty; a Disk whose file
// fails while open turns itself off with one log line. Redis bounds every
// operation by a short timeout and, after a few failures in a row, skips
// the server behind a circuit breaker that probes it in the background,
// logging one line when the server goes and one when it is back. Both
// return errors wrapping [ErrUnavailable] for the operations that fail,
// and count failures, skipped operations and outages in [Stats]; [Tiered]
// turns a failing secondary tier into plain misses.
//
// What this package is not: it does not compute keys (package request does),
// decode results (package value does), or deduplicate concurrent identical
// requests (package resolve runs them once). It is not a general key-value
// store either: a cache may drop any entry at any time, so a miss is always a
// valid answer, and callers should treat a cache error as a miss.
package cache
