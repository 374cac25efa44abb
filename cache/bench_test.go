package cache

import (
	"context"
	"testing"
)

func BenchmarkMemoryGetHit(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(0)
	defer m.Close()
	const n = 1024
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = key(i)
		_ = m.Put(ctx, keys[i], value(i, 256))
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, ok, _ := m.Get(ctx, keys[i%n]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkMemoryGetHitParallel(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(0)
	defer m.Close()
	const n = 1024
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = key(i)
		_ = m.Put(ctx, keys[i], value(i, 256))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok, _ := m.Get(ctx, keys[i%n]); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

func BenchmarkMemoryPut(b *testing.B) {
	ctx := context.Background()
	m := NewMemory(64 << 20)
	defer m.Close()
	const n = 1024
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = key(i)
	}
	v := value(0, 256)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = m.Put(ctx, keys[i%n], v)
		i++
	}
}

func BenchmarkDiskGetHit1KiB(b *testing.B) {
	ctx := context.Background()
	d, err := OpenDisk(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	const n = 1024
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = key(i)
		if err := d.Put(ctx, keys[i], value(i, 1024)); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, ok, err := d.Get(ctx, keys[i%n]); !ok || err != nil {
			b.Fatal("miss", err)
		}
		i++
	}
}

func BenchmarkDiskPut1KiB(b *testing.B) {
	ctx := context.Background()
	d, err := OpenDisk(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	v := value(0, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := d.Put(ctx, key(i%1024), v); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkRedisGetHit1KiB(b *testing.B) {
	ctx := context.Background()
	r, err := NewRedis(startRedis(b), RedisOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	k := key(1)
	if err := r.Put(ctx, k, value(1, 1024)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := r.Get(ctx, k); !ok || err != nil {
			b.Fatal("miss", err)
		}
	}
}

func BenchmarkDecodeEntry1KiB(b *testing.B) {
	k := key(1)
	frame := encodeEntry(&k, value(1, 1024))
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEntry(&k, frame); err != nil {
			b.Fatal(err)
		}
	}
}
