package cache

import (
	"bytes"
	"context"
	"testing"
)

// A key under the prefix that holds a hash, a list… (another program's,
// or a stray HSET) is not a frame: it must be a corrupt entry — a miss,
// deleted — and not a server failure that opens the breaker and stops the
// cache for every other key.
func TestRedisWrongTypeIsCorruptNotOutage(t *testing.T) {
	ctx := context.Background()
	url := startRedis(t)
	r := newRedis(t, url, RedisOptions{})
	raw := rawRedis(t, url)
	if err := r.Put(ctx, key(2), value(2, 100)); err != nil {
		t.Fatal(err)
	}
	rk := r.RedisKey(key(1))
	for i := range DefaultRedisFailureThreshold + 1 {
		if err := raw.HSet(ctx, rk, "field", "x").Err(); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := r.Get(ctx, key(1)); ok || err != nil || v != nil {
			t.Fatalf("Get %d of a hash: %v, %v, %v; want a miss", i, v, ok, err)
		}
	}
	s := r.Stats()
	if s.Down || s.Outages != 0 || s.Failures != 0 {
		t.Fatalf("a key of the wrong type counted as an outage: %+v", s)
	}
	if s.Corrupt == 0 {
		t.Errorf("a key of the wrong type was not counted as corrupt: %+v", s)
	}
	if n, _ := raw.Exists(ctx, rk).Result(); n != 0 {
		t.Error("the key of the wrong type was not deleted")
	}
	if v, ok, err := r.Get(ctx, key(2)); err != nil || !ok || !bytes.Equal(v, value(2, 100)) {
		t.Fatalf("good key beside it: %v, %v", ok, err)
	}
}
