package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
)

func TestTieredPromotion(t *testing.T) {
	ctx := context.Background()
	disk := openDisk(t, t.TempDir(), 1<<20)
	tc := NewTiered(NewMemory(1<<20), disk)
	defer tc.Close()

	// In the secondary tier only, as after a restart.
	if err := disk.Put(ctx, key(1), []byte("from disk")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		v, ok, err := tc.Get(ctx, key(1))
		if err != nil || !ok || string(v) != "from disk" {
			t.Fatalf("Get = %q, %v, %v", v, ok, err)
		}
	}
	m, s := tc.TierStats()
	if m.Hits != 2 || m.Misses != 1 || s.Hits != 1 {
		t.Fatalf("memory %+v, secondary %+v: want one promotion, then memory hits", m, s)
	}
	if _, ok, _ := tc.Memory().Get(ctx, key(1)); !ok {
		t.Fatal("the secondary hit was not promoted into memory")
	}

	if _, ok, err := tc.Get(ctx, key(2)); ok || err != nil {
		t.Fatalf("Get of an absent key = %v, %v", ok, err)
	}
	if err := tc.Put(ctx, key(3), []byte("both")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Cache{tc.Memory(), tc.Secondary()} {
		if v, ok, _ := c.Get(ctx, key(3)); !ok || string(v) != "both" {
			t.Fatalf("%T after a tiered Put: %q, %v", c, v, ok)
		}
	}
	if st := tc.Stats(); st.Hits != 3 || st.Misses != 1 || st.Puts != 1 || st.Entries != 2 || st.MaxBytes != 1<<20 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestTieredMemoryEvictedStillOnDisk(t *testing.T) {
	ctx := context.Background()
	tc := NewTiered(NewMemory(4<<10), openDisk(t, t.TempDir(), 1<<20))
	defer tc.Close()
	for i := range 50 {
		if err := tc.Put(ctx, key(i), value(i, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		if v, ok, err := tc.Get(ctx, key(i)); err != nil || !ok || !bytes.Equal(v, value(i, 1024)) {
			t.Fatalf("key %d: %v, %v", i, ok, err)
		}
	}
	if m, _ := tc.TierStats(); m.Evictions == 0 {
		t.Fatalf("memory tier stats %+v: want evictions", m)
	}
}

func TestTieredRedis(t *testing.T) {
	ctx := context.Background()
	r := newRedis(t, startRedis(t), RedisOptions{})
	if err := r.Put(ctx, key(1), []byte("shared")); err != nil {
		t.Fatal(err)
	}
	tc := NewTiered(NewMemory(0), r)
	defer tc.Close()
	for range 2 {
		if v, ok, err := tc.Get(ctx, key(1)); err != nil || !ok || string(v) != "shared" {
			t.Fatalf("Get = %q, %v, %v", v, ok, err)
		}
	}
	if _, s := tc.TierStats(); s.Hits != 1 {
		t.Fatalf("secondary %+v: want one hit, then memory", s)
	}
}

// failing is a secondary tier whose every operation fails.
type failing struct{ *Memory }

var errDown = errors.New("down")

func (*failing) Get(context.Context, Key) ([]byte, bool, error) { return nil, false, errDown }
func (*failing) Put(context.Context, Key, []byte) error         { return errDown }

func TestTieredSecondaryErrors(t *testing.T) {
	ctx := context.Background()
	tc := NewTiered(NewMemory(0), &failing{NewMemory(0)})
	defer tc.Close()
	if v, ok, err := tc.Get(ctx, key(1)); ok || err != nil || v != nil {
		t.Fatalf("Get = %v, %v, %v; want a plain miss", v, ok, err)
	}
	if err := tc.Put(ctx, key(1), []byte("v")); err != nil {
		t.Fatalf("Put = %v; want the failure absorbed", err)
	}
	if v, ok, err := tc.Get(ctx, key(1)); !ok || err != nil || string(v) != "v" {
		t.Fatalf("Get after a half-failed Put = %q, %v, %v; want the memory tier's copy", v, ok, err)
	}
	if s := tc.Stats(); s.Puts != 0 || s.Hits != 1 || s.Misses != 1 || s.Failures != 2 {
		t.Fatalf("Stats = %+v, want 1 hit, 1 miss, 2 failures", s)
	}
	// A caller that gives up gets its own error, not a miss.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := tc.Get(cctx, key(2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context = %v", err)
	}
}

// panicking is a secondary tier whose every operation panics.
type panicking struct{ *Memory }

func (*panicking) Get(context.Context, Key) ([]byte, bool, error) { panic("boom") }
func (*panicking) Put(context.Context, Key, []byte) error         { panic("boom") }

func TestTieredSecondaryPanics(t *testing.T) {
	ctx := context.Background()
	tc := NewTiered(NewMemory(0), &panicking{NewMemory(0)})
	defer tc.Close()
	if _, ok, err := tc.Get(ctx, key(1)); ok || err != nil {
		t.Fatalf("Get = %v, %v; want a plain miss", ok, err)
	}
	if err := tc.Put(ctx, key(1), []byte("v")); err != nil {
		t.Fatalf("Put = %v", err)
	}
	if v, ok, _ := tc.Get(ctx, key(1)); !ok || string(v) != "v" {
		t.Fatal("the memory tier lost the value")
	}
	if s := tc.Stats(); s.Failures != 2 {
		t.Fatalf("Stats = %+v, want 2 failures", s)
	}
}

// TestTieredDiskDamagedWhileOpen: a real disk tier whose file is damaged
// under it degrades to misses, then to skips, never to errors.
func TestTieredDiskDamagedWhileOpen(t *testing.T) {
	ctx := context.Background()
	d, rec := openLogged(t, t.TempDir())
	fillDisk(t, d)
	tc := NewTiered(NewMemory(1<<20), d)
	defer tc.Close()
	damageOpenFile(t, d, 4)
	for i := range damageEntries {
		if v, ok, err := tc.Get(ctx, key(i)); ok || err != nil || v != nil {
			t.Fatalf("key %d: Get = %v, %v, %v; want a plain miss", i, v, ok, err)
		}
		if err := tc.Put(ctx, key(i), value(i, 10)); err != nil {
			t.Fatalf("key %d: Put = %v", i, err)
		}
		if v, ok, err := tc.Get(ctx, key(i)); !ok || err != nil || !bytes.Equal(v, value(i, 10)) {
			t.Fatalf("key %d: not served from memory: %v, %v", i, ok, err)
		}
	}
	s := tc.Stats()
	if !s.Down || s.Outages != 1 || s.Failures != 1 || s.Skips != 2*damageEntries-1 {
		t.Fatalf("Stats = %+v: want down after one failure, the rest skipped", s)
	}
	if n := len(rec.records(slog.LevelWarn)); n != 1 {
		t.Fatalf("%d log lines for one outage", n)
	}
}

func TestTieredConcurrent(t *testing.T) {
	ctx := context.Background()
	tc := NewTiered(NewMemory(8<<10), openDisk(t, t.TempDir(), 64<<10))
	defer tc.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				k := (i*3 + g) % 80
				if i%4 == 0 {
					if err := tc.Put(ctx, key(k), value(k, 256)); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				if v, ok, err := tc.Get(ctx, key(k)); err != nil || ok && !bytes.Equal(v, value(k, 256)) {
					t.Errorf("key %d: Get = %v, %v", k, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := tc.Stats(); s.Puts != 4*50 || s.Hits+s.Misses != 4*150 {
		t.Fatalf("Stats = %+v", s)
	}
}
