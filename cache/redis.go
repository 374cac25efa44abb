package cache

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix of a Redis cache whose RedisOptions
// leave Prefix empty.
const DefaultRedisPrefix = "arbor:"

// RedisOptions configures a Redis cache. The zero value is usable.
type RedisOptions struct {
	// Prefix is put before the hex form of each key (DefaultRedisPrefix
	// when empty), so that several caches can share one database.
	Prefix string
	// TTL, when positive, makes every entry expire that long after it was
	// put. Zero keeps entries until the server evicts them under its own
	// maxmemory policy.
	TTL time.Duration
}

// Redis is a cache in a Redis server, to share results across a cluster.
// An entry lives under Prefix + the 64 hex digits of its key, framed with
// the same CRC-32C check as Disk entries; a value that fails the check is a
// miss and is deleted (unless another writer replaced it meanwhile).
//
// The server decides what stays: Stats' Evictions, Entries, Bytes and
// MaxBytes are zero, and a size bound is the server's maxmemory setting.
type Redis struct {
	client *redis.Client
	prefix string
	ttl    time.Duration
	closed atomic.Bool

	hits, misses, puts, corrupt atomic.Int64
}

var _ Cache = (*Redis)(nil)

// delIfEqual deletes KEYS[1] only if it still holds ARGV[1], so that the
// removal of a corrupt value cannot remove a good one written since.
var delIfEqual = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// NewRedis returns a cache in the Redis server named by url, such as
// "redis://localhost:6379/0" or "unix:///run/redis.sock" (see
// redis.ParseURL for the query parameters). It does not connect: the first
// Get, Put or Ping does.
func NewRedis(url string, opts RedisOptions) (*Redis, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cache: redis url: %w", err)
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("cache: redis TTL %v is negative", opts.TTL)
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	return &Redis{client: redis.NewClient(o), prefix: prefix, ttl: opts.TTL}, nil
}

// Ping checks that the server answers.
func (r *Redis) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("cache: redis: %w", err)
	}
	return nil
}

// RedisKey returns the Redis key under which r stores k.
func (r *Redis) RedisKey(k Key) string {
	b := make([]byte, len(r.prefix)+hex.EncodedLen(len(k)))
	copy(b, r.prefix)
	hex.Encode(b[len(r.prefix):], k[:])
	return string(b)
}

// Get returns the value stored under k.
func (r *Redis) Get(ctx context.Context, k Key) ([]byte, bool, error) {
	if r.closed.Load() {
		return nil, false, ErrClosed
	}
	rk := r.RedisKey(k)
	frame, err := r.client.Get(ctx, rk).Bytes()
	if errors.Is(err, redis.Nil) {
		r.misses.Add(1)
		return nil, false, nil
	}
	if err != nil {
		return nil, false, r.mapErr(err)
	}
	v, err := decodeEntry(&k, frame)
	if err != nil {
		r.corrupt.Add(1)
		r.misses.Add(1)
		// A failed delete leaves the value to fail its check again; the
		// caller still gets its miss.
		_ = delIfEqual.Run(ctx, r.client, []string{rk}, frame).Err()
		return nil, false, nil
	}
	r.hits.Add(1)
	return v, true, nil
}

// Put stores v under k, to expire after RedisOptions.TTL if that is set.
func (r *Redis) Put(ctx context.Context, k Key, v []byte) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := r.client.Set(ctx, r.RedisKey(k), encodeEntry(&k, v), r.ttl).Err(); err != nil {
		return r.mapErr(err)
	}
	r.puts.Add(1)
	return nil
}

// Stats returns the counters this client has seen.
func (r *Redis) Stats() Stats {
	return Stats{
		Hits:    r.hits.Load(),
		Misses:  r.misses.Load(),
		Puts:    r.puts.Load(),
		Corrupt: r.corrupt.Load(),
	}
}

// Close closes the client's connections.
func (r *Redis) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return r.client.Close()
}

func (r *Redis) mapErr(err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("cache: redis: %w", err)
}
