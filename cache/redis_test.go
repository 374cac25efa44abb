package cache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedis starts a private redis-server on a free loopback port for the
// test and returns its URL. Without redis-server on PATH the test fails —
// run `make tools` — unless ARBOR_SKIP_REDIS=1 is set, which skips it.
func startRedis(tb testing.TB) string {
	tb.Helper()
	return startRedisServer(tb).url
}

// redisServer is a redis-server that a test started, to kill, freeze and
// restart.
type redisServer struct {
	tb     testing.TB
	bin    string
	port   int
	addr   string
	url    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan error
}

// startRedisServer starts a redis-server like startRedis and returns it.
func startRedisServer(tb testing.TB) *redisServer {
	tb.Helper()
	if os.Getenv("ARBOR_SKIP_REDIS") == "1" {
		tb.Skip("ARBOR_SKIP_REDIS=1")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal("redis-server is not on PATH: run `make tools` to install it (or set ARBOR_SKIP_REDIS=1 to skip the Redis tests)")
	}
	var lastErr error
	for range 3 { // another process may take the port between our probe and redis's bind
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s := &redisServer{tb: tb, bin: bin, port: port}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.url = "redis://" + s.addr + "/0"
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.kill)
			return s
		}
	}
	tb.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// start runs redis-server on s's port and waits for it to answer.
func (s *redisServer) start() error {
	var out bytes.Buffer
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.tb.TempDir(),
		"--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !pingRedis(s.addr) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", s.addr, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// kill ends the server with SIGKILL (frozen or not) and waits for it.
func (s *redisServer) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// signal sends sig to the running server.
func (s *redisServer) signal(sig os.Signal) {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatal(err)
	}
}

// restart starts a new, empty server on the same port after kill.
func (s *redisServer) restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatal(err)
	}
}

func pingRedis(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

func newRedis(t *testing.T, url string, opts RedisOptions) *Redis {
	t.Helper()
	r, err := NewRedis(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawRedis is a plain client for looking behind the cache's back.
func rawRedis(t *testing.T, url string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisRoundTrip(t *testing.T) {
	ctx := context.Background()
	url := startRedis(t)
	r := newRedis(t, url, RedisOptions{})
	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.Get(ctx, key(1)); v != nil || ok || err != nil {
		t.Fatalf("empty cache: Get = %v, %v, %v; want a miss", v, ok, err)
	}
	for i := range 3 {
		if err := r.Put(ctx, key(i), value(i, 1000*i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		v, ok, err := r.Get(ctx, key(i))
		if err != nil || !ok || !bytes.Equal(v, value(i, 1000*i)) {
			t.Fatalf("key %d: Get = %v, %v", i, ok, err)
		}
	}
	k := key(1)
	if got, want := r.RedisKey(k), fmt.Sprintf("arbor:%x", k); got != want {
		t.Fatalf("RedisKey = %s, want %s", got, want)
	}
	raw := rawRedis(t, url)
	if n, err := raw.Exists(ctx, r.RedisKey(k)).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS %s = %d, %v", r.RedisKey(k), n, err)
	}
	if ttl, err := raw.TTL(ctx, r.RedisKey(k)).Result(); err != nil || ttl != -1 {
		t.Fatalf("TTL without RedisOptions.TTL = %v, %v; want none (-1)", ttl, err)
	}
	want := Stats{Hits: 3, Misses: 1, Puts: 3}
	if s := r.Stats(); s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
}

func TestRedisPrefix(t *testing.T) {
	ctx := context.Background()
	url := startRedis(t)
	a := newRedis(t, url, RedisOptions{Prefix: "a/"})
	b := newRedis(t, url, RedisOptions{Prefix: "b/"})
	if err := a.Put(ctx, key(1), []byte("in a")); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Get(ctx, key(1)); ok {
		t.Fatal("a value under prefix a/ was found under b/")
	}
	if n, _ := rawRedis(t, url).Exists(ctx, fmt.Sprintf("a/%x", key(1))).Result(); n != 1 {
		t.Fatal("no key under the configured prefix")
	}
}

func TestRedisCorruption(t *testing.T) {
	ctx := context.Background()
	url := startRedis(t)
	r := newRedis(t, url, RedisOptions{})
	raw := rawRedis(t, url)
	for i := range 3 {
		if err := r.Put(ctx, key(i), value(i, 500)); err != nil {
			t.Fatal(err)
		}
	}
	rk := r.RedisKey(key(1))
	b, err := raw.Get(ctx, rk).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b[frameHeaderSize+7] ^= 0x10
	if err := raw.Set(ctx, rk, b, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := r.Get(ctx, key(1)); ok || err != nil || v != nil {
		t.Fatalf("corrupt value: Get = %v, %v, %v; want a miss", v, ok, err)
	}
	if s := r.Stats(); s.Corrupt != 1 || s.Misses != 1 {
		t.Fatalf("Stats = %+v, want Corrupt 1, Misses 1", s)
	}
	if n, _ := raw.Exists(ctx, rk).Result(); n != 0 {
		t.Fatal("corrupt value was not deleted")
	}
	for _, i := range []int{0, 2} {
		if v, ok, err := r.Get(ctx, key(i)); err != nil || !ok || !bytes.Equal(v, value(i, 500)) {
			t.Fatalf("key %d beside the corrupt one: %v, %v", i, ok, err)
		}
	}
	// A value that is not a frame at all, put by something else.
	if err := raw.Set(ctx, rk, "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := r.Get(ctx, key(1)); ok || r.Stats().Corrupt != 2 {
		t.Fatalf("foreign value: ok %v, Stats %+v", ok, r.Stats())
	}
}

func TestRedisTTL(t *testing.T) {
	ctx := context.Background()
	url := startRedis(t)
	raw := rawRedis(t, url)
	long := newRedis(t, url, RedisOptions{Prefix: "long:", TTL: time.Hour})
	if err := long.Put(ctx, key(1), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if ttl, err := raw.TTL(ctx, long.RedisKey(key(1))).Result(); err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("TTL = %v, %v; want about an hour", ttl, err)
	}

	short := newRedis(t, url, RedisOptions{Prefix: "short:", TTL: 50 * time.Millisecond})
	if err := short.Put(ctx, key(1), []byte("v")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := short.Get(ctx, key(1))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an entry with a 50ms TTL is still there after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok, _ := long.Get(ctx, key(1)); !ok {
		t.Fatal("the long-lived entry expired")
	}
}

func TestRedisErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewRedis("http://localhost", RedisOptions{}); err == nil {
		t.Fatal("NewRedis accepted an http URL")
	}
	if _, err := NewRedis("redis://localhost", RedisOptions{TTL: -time.Second}); err == nil {
		t.Fatal("NewRedis accepted a negative TTL")
	}
	// A port nobody listens on: errors, not hangs and not misses.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := newRedis(t, "redis://"+addr+"/0?max_retries=-1&dial_timeout=1s", RedisOptions{})
	if _, _, err := r.Get(ctx, key(1)); err == nil {
		t.Fatal("Get from a server that is not there succeeded")
	}
	if err := r.Put(ctx, key(1), nil); err == nil {
		t.Fatal("Put to a server that is not there succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Get(ctx, key(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := r.Put(ctx, key(1), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	if err := r.Ping(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close: %v, want ErrClosed", err)
	}
}

func TestRedisConcurrent(t *testing.T) {
	ctx := context.Background()
	r := newRedis(t, startRedis(t), RedisOptions{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (i + g) % 50
				if i%5 == 0 {
					if err := r.Put(ctx, key(k), value(k, 100)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if v, ok, err := r.Get(ctx, key(k)); err != nil || ok && !bytes.Equal(v, value(k, 100)) {
					t.Errorf("key %d: Get = %v, %v", k, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := r.Stats(); s.Puts != 8*40 || s.Hits+s.Misses != 8*160 || s.Hits == 0 {
		t.Fatalf("Stats = %+v", s)
	}
}

// TestRedisLogRouter: go-redis's lines reach the logger of the cache whose
// operation logged them, at Debug, and go nowhere otherwise.
func TestRedisLogRouter(t *testing.T) {
	rec := &logRecorder{}
	l := slog.New(rec)
	redisLogRouter{}.Printf(context.WithValue(context.Background(), redisLogKey{}, l), "redis: pool: %s\n", "trouble")
	redisLogRouter{}.Printf(context.Background(), "a background line")
	redisLogRouter{}.Printf(nil, "no context") //nolint:staticcheck // go-redis may pass one
	recs := rec.records(slog.LevelDebug)
	if len(recs) != 1 || recs[0].Level != slog.LevelDebug || recordAttr(recs[0], "line") != "redis: pool: trouble" {
		t.Fatalf("records = %v", recs)
	}
	// A cache without a Logger puts none in its operations' contexts.
	r := newRedis(t, "redis://127.0.0.1:1/0", RedisOptions{})
	if r.logContext(context.Background()).Value(redisLogKey{}) != nil {
		t.Fatal("a logger in the context of a cache that has none")
	}
	r = newRedis(t, "redis://127.0.0.1:1/0", RedisOptions{Logger: l})
	if r.logContext(context.Background()).Value(redisLogKey{}) != l {
		t.Fatal("the cache's logger is not in its operations' contexts")
	}
}

func TestRedisOptionErrors(t *testing.T) {
	for _, o := range []RedisOptions{{Timeout: -1}, {DialTimeout: -1}, {ProbeMin: -1}, {ProbeMax: -1}, {FailureThreshold: -1}} {
		if _, err := NewRedis("redis://localhost", o); err == nil {
			t.Errorf("NewRedis accepted %+v", o)
		}
	}
}
