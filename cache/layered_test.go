package cache

import (
	"context"
	"testing"
	"time"
)

// A disk in front of a real, shared Redis: a value another process put in
// Redis is a hit and lands on disk; with Redis killed the disk still
// answers and takes new values; once Redis is back it is used again.
func TestLayeredDiskThenRedis(t *testing.T) {
	ctx := context.Background()
	rs := startRedisServer(t)
	other := newRedis(t, rs.url, RedisOptions{}) // another member's view of the same Redis
	if err := other.Put(ctx, key(1), []byte("from another member")); err != nil {
		t.Fatal(err)
	}
	d := openDisk(t, t.TempDir(), 1<<20)
	l := NewLayered(d, newRedis(t, rs.url, RedisOptions{}))
	if v, ok, err := l.Get(ctx, key(1)); err != nil || !ok || string(v) != "from another member" {
		t.Fatalf("Get = %q, %v, %v; want the shared value", v, ok, err)
	}
	if v, ok, _ := d.Get(ctx, key(1)); !ok || string(v) != "from another member" {
		t.Fatal("a far hit was not copied to disk")
	}
	if err := l.Put(ctx, key(2), []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := other.Get(ctx, key(2)); !ok || string(v) != "mine" {
		t.Fatal("a Put did not reach the shared Redis")
	}

	rs.kill()
	for _, k := range []int{1, 2} { // both on disk: hits with Redis gone
		if _, ok, err := l.Get(ctx, key(k)); err != nil || !ok {
			t.Fatalf("key %d with Redis down: %v, %v; want the disk's copy", k, ok, err)
		}
	}
	if err := l.Put(ctx, key(3), []byte("while down")); err != nil {
		t.Fatalf("Put with Redis down = %v; want it on disk", err)
	}
	if v, ok, err := l.Get(ctx, key(3)); err != nil || !ok || string(v) != "while down" {
		t.Fatalf("Get after a Put with Redis down = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := l.Get(ctx, key(4)); err != nil || ok {
		t.Fatalf("a key nowhere, Redis down: %v, %v; want a plain miss", ok, err)
	}
	if s := l.Stats(); s.Failures == 0 {
		t.Fatalf("stats %+v: Redis's failures not counted", s)
	}

	rs.restart()
	if err := other.Put(ctx, key(5), []byte("after the outage")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Redis to be used again", func() bool {
		v, ok, _ := l.Get(ctx, key(5))
		return ok && string(v) == "after the outage"
	})
}

func TestLayeredBothFail(t *testing.T) {
	ctx := context.Background()
	l := NewLayered(&failing{NewMemory(0)}, &failing{NewMemory(0)})
	defer l.Close()
	if _, ok, err := l.Get(ctx, key(1)); ok || err != nil {
		t.Fatalf("Get = %v, %v; want a plain miss", ok, err)
	}
	if err := l.Put(ctx, key(1), []byte("v")); err == nil {
		t.Fatal("Put with both layers failing succeeded")
	}
	if s := l.Stats(); s.Failures != 2 || s.Misses != 1 || s.Puts != 0 {
		t.Fatalf("stats %+v", s)
	}
}
