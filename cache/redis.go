package cache

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRedisPrefix is the key prefix of a Redis cache whose RedisOptions
// leave Prefix empty.
const DefaultRedisPrefix = "arbor:"

// Defaults of RedisOptions.
const (
	DefaultRedisTimeout          = 100 * time.Millisecond
	DefaultRedisDialTimeout      = 100 * time.Millisecond
	DefaultRedisFailureThreshold = 3
	DefaultRedisProbeMin         = 250 * time.Millisecond
	DefaultRedisProbeMax         = 4 * time.Second
)

// RedisOptions configures a Redis cache. The zero value is usable.
type RedisOptions struct {
	// Prefix is put before the hex form of each key (DefaultRedisPrefix
	// when empty), so that several caches can share one database.
	Prefix string
	// TTL, when positive, makes every entry expire that long after it was
	// put. Zero keeps entries until the server evicts them under its own
	// maxmemory policy.
	TTL time.Duration
	// Timeout bounds each Get and Put, waiting for a connection and
	// dialing included (DefaultRedisTimeout, 100ms, when zero). It is also
	// the socket read and write timeout unless the URL sets those.
	Timeout time.Duration
	// DialTimeout bounds establishing a connection (DefaultRedisDialTimeout
	// when zero and the URL sets no dial_timeout).
	DialTimeout time.Duration
	// FailureThreshold is how many operations in a row must fail before
	// the cache stops sending them to the server
	// (DefaultRedisFailureThreshold when zero).
	FailureThreshold int
	// ProbeMin and ProbeMax bound the wait before the server is probed
	// again while it is skipped: ProbeMin after it starts failing, twice
	// as long after each failed probe, never more than ProbeMax (defaults
	// DefaultRedisProbeMin, DefaultRedisProbeMax).
	ProbeMin, ProbeMax time.Duration
	// Logger receives the cache's log lines: one when the server stops
	// answering, one when it answers again, and go-redis's own lines at
	// Debug level (see redislog.go). Nil: nowhere.
	Logger *slog.Logger
}

// Redis is a cache in a Redis server, to share results across a cluster.
// An entry lives under Prefix + the 64 hex digits of its key, framed with
// the same CRC-32C check as Disk entries; a value that fails the check is a
// miss and is deleted (unless another writer replaced it meanwhile).
//
// Trouble with the server costs a miss, never a stall: every operation is
// bounded by RedisOptions.Timeout and is not retried. After
// FailureThreshold failures in a row the cache logs one line and skips the
// server — Get is a miss, Put a no-op, counted in Stats.Skips — while a
// background probe (one at a time, backing off from ProbeMin to ProbeMax)
// checks whether it answers again; when it does, the cache logs one more
// line and uses it again. Operations that fail return an error wrapping
// ErrUnavailable.
//
// The server decides what stays: Stats' Evictions, Entries, Bytes and
// MaxBytes are zero, and a size bound is the server's maxmemory setting.
type Redis struct {
	client      *redis.Client
	addr        string
	prefix      string
	ttl         time.Duration
	timeout     time.Duration
	dialTimeout time.Duration
	log         *slog.Logger
	logOps      bool // put log into operation contexts, for go-redis's lines
	br          *breaker

	mu     sync.Mutex // orders probe starts against Close
	closed atomic.Bool
	wg     sync.WaitGroup // the probe, if one is out

	skipsAtOpen atomic.Int64

	hits, misses, puts, corrupt atomic.Int64
	failures, skips, outages    atomic.Int64
}

var _ Cache = (*Redis)(nil)

// delIfEqual deletes KEYS[1] only if it still holds ARGV[1], so that the
// removal of a corrupt value cannot remove a good one written since.
var delIfEqual = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// delIfNotString deletes KEYS[1] if it holds something other than a string
// (a hash, a list…), which no Put of a cache wrote.
var delIfNotString = redis.NewScript(`if redis.call("TYPE", KEYS[1]).ok ~= "string" then return redis.call("DEL", KEYS[1]) end return 0`)

// NewRedis returns a cache in the Redis server named by url, such as
// "redis://localhost:6379/0" or "unix:///run/redis.sock" (see
// redis.ParseURL for the query parameters, whose timeouts apply to the
// connection; RedisOptions.Timeout still bounds each operation). It does
// not connect: the first Get, Put or Ping does.
func NewRedis(url string, opts RedisOptions) (*Redis, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cache: redis url: %w", err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"TTL", opts.TTL}, {"Timeout", opts.Timeout}, {"DialTimeout", opts.DialTimeout}, {"ProbeMin", opts.ProbeMin}, {"ProbeMax", opts.ProbeMax}} {
		if d.v < 0 {
			return nil, fmt.Errorf("cache: redis %s %v is negative", d.name, d.v)
		}
	}
	if opts.FailureThreshold < 0 {
		return nil, fmt.Errorf("cache: redis FailureThreshold %d is negative", opts.FailureThreshold)
	}
	prefix := or(opts.Prefix, DefaultRedisPrefix)
	timeout := or(opts.Timeout, DefaultRedisTimeout)
	probeMin := or(opts.ProbeMin, DefaultRedisProbeMin)
	probeMax := max(or(opts.ProbeMax, DefaultRedisProbeMax), probeMin)
	threshold := or(opts.FailureThreshold, DefaultRedisFailureThreshold)

	// go-redis's defaults wait seconds and retry: 3 command retries with
	// backoff, 5 dial attempts 100ms apart, 5s socket timeouts. Against a
	// dead or frozen server each Get then took seconds. One attempt,
	// bounded, and the breaker does the rest.
	if opts.DialTimeout > 0 || o.DialTimeout == 0 {
		o.DialTimeout = or(opts.DialTimeout, DefaultRedisDialTimeout)
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = timeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = timeout
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = timeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = -1 // none
	}
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	o.ContextTimeoutEnabled = true

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	routeRedisLogs()
	return &Redis{
		client:      redis.NewClient(o),
		addr:        o.Addr,
		prefix:      prefix,
		ttl:         opts.TTL,
		timeout:     timeout,
		dialTimeout: o.DialTimeout,
		log:         log,
		logOps:      opts.Logger != nil,
		br:          newBreaker(threshold, probeMin, probeMax),
	}, nil
}

// or returns v, or def when v is zero.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Ping checks that the server answers, within the context's deadline (or
// Timeout if it has none). It goes to the server even while the cache
// skips it, and leaves the breaker alone.
func (r *Redis) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.dialTimeout+r.timeout)
		defer cancel()
	}
	if err := r.client.Ping(r.logContext(ctx)).Err(); err != nil {
		return r.mapErr(err)
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
	if !r.admit() {
		r.skips.Add(1)
		return nil, false, nil
	}
	rk := r.RedisKey(k)
	octx, cancel := r.opContext(ctx)
	frame, err := r.client.Get(octx, rk).Bytes()
	cancel()
	if errors.Is(err, redis.Nil) {
		r.br.success()
		r.misses.Add(1)
		return nil, false, nil
	}
	if redis.HasErrorPrefix(err, "WRONGTYPE") {
		// The server answered: the key holds no frame but a hash, a
		// list…, which is a corrupt entry, not an outage.
		r.br.success()
		r.corrupt.Add(1)
		r.misses.Add(1)
		octx, cancel := r.opContext(ctx)
		_ = delIfNotString.Run(octx, r.client, []string{rk}).Err()
		cancel()
		return nil, false, nil
	}
	if err != nil {
		return nil, false, r.failed(ctx, "get", err)
	}
	r.br.success()
	v, err := decodeEntry(&k, frame)
	if err != nil {
		r.corrupt.Add(1)
		r.misses.Add(1)
		// A failed delete leaves the value to fail its check again; the
		// caller still gets its miss.
		octx, cancel := r.opContext(ctx)
		_ = delIfEqual.Run(octx, r.client, []string{rk}, frame).Err()
		cancel()
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
	if !r.admit() {
		r.skips.Add(1)
		return nil
	}
	octx, cancel := r.opContext(ctx)
	err := r.client.Set(octx, r.RedisKey(k), encodeEntry(&k, v), r.ttl).Err()
	cancel()
	if err != nil {
		return r.failed(ctx, "put", err)
	}
	r.br.success()
	r.puts.Add(1)
	return nil
}

// Stats returns the counters this client has seen. Down is true while the
// server is being skipped.
func (r *Redis) Stats() Stats {
	return Stats{
		Hits:     r.hits.Load(),
		Misses:   r.misses.Load(),
		Puts:     r.puts.Load(),
		Corrupt:  r.corrupt.Load(),
		Failures: r.failures.Load(),
		Skips:    r.skips.Load(),
		Outages:  r.outages.Load(),
		Down:     r.br.isOpen(),
	}
}

// Close closes the client's connections, and waits for a probe that is
// out (at most DialTimeout + Timeout).
func (r *Redis) Close() error {
	r.mu.Lock()
	if r.closed.Swap(true) {
		r.mu.Unlock()
		return nil
	}
	r.mu.Unlock()
	err := r.client.Close()
	r.wg.Wait()
	return err
}

// admit reports whether an operation may go to the server, starting the
// probe when it is time for one.
func (r *Redis) admit() bool {
	ok, probe := r.br.allow()
	if probe {
		r.startProbe()
	}
	return ok
}

func (r *Redis) startProbe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		return
	}
	r.wg.Add(1)
	go r.probe()
}

// probe pings the server and closes or reopens the breaker.
func (r *Redis) probe() {
	defer r.wg.Done()
	ctx, cancel := context.WithTimeout(r.logContext(context.Background()), r.dialTimeout+r.timeout)
	err := r.client.Ping(ctx).Err()
	cancel()
	if r.closed.Load() {
		return
	}
	if err != nil {
		r.br.probed(false)
		return
	}
	down := r.br.probed(true)
	r.log.Info("cache: redis is answering again; using it",
		"addr", r.addr, "down_for", down.Round(time.Millisecond), "skipped", r.skips.Load()-r.skipsAtOpen.Load())
}

// failed accounts for an operation that got err; it returns the error to
// give the caller.
func (r *Redis) failed(ctx context.Context, op string, err error) error {
	if r.closed.Load() || errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	if ctx.Err() != nil {
		return r.mapErr(err) // the caller gave up: no fault of the server's
	}
	r.failures.Add(1)
	if r.br.failure() {
		r.outages.Add(1)
		r.skipsAtOpen.Store(r.skips.Load())
		r.log.Error("cache: redis is not answering; skipping it, and computing results, until a probe gets through",
			"addr", r.addr, "op", op, "err", err, "failures_in_a_row", r.br.threshold, "failures", r.failures.Load(), "probe_in", r.br.minWait)
	}
	return fmt.Errorf("%w: redis %s: %s: %w", ErrUnavailable, r.addr, op, err)
}

// opContext bounds an operation by the timeout and carries the logger for
// go-redis's lines.
func (r *Redis) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.logContext(ctx), r.timeout)
}

func (r *Redis) logContext(ctx context.Context) context.Context {
	if r.logOps {
		return context.WithValue(ctx, redisLogKey{}, r.log)
	}
	return ctx
}

func (r *Redis) mapErr(err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("cache: redis: %w", err)
}
