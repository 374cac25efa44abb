package cache_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"

	"github.com/arbor-rpc/arbor/cache"
)

// A "+full" cache: results in memory, backed by a disk cache that outlives
// the process.
func ExampleNewTiered() {
	dir, err := os.MkdirTemp("", "arbor-cache-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	disk, err := cache.OpenDisk(dir, 1<<30)
	if err != nil {
		panic(err)
	}
	c := cache.NewTiered(cache.NewMemory(64<<20), disk)
	defer c.Close()

	ctx := context.Background()
	k := cache.Key(sha256.Sum256([]byte("a request tree's content key")))
	if _, ok, _ := c.Get(ctx, k); !ok {
		result := []byte{0xa5, 'h', 'e', 'l', 'l', 'o'} // msgpack "hello"
		if err := c.Put(ctx, k, result); err != nil {
			panic(err)
		}
	}
	v, ok, _ := c.Get(ctx, k)
	fmt.Printf("%v %q\n", ok, v[1:])
	s := c.Stats()
	fmt.Println("hits", s.Hits, "misses", s.Misses, "entries", s.Entries)
	// Output:
	// true "hello"
	// hits 1 misses 1 entries 1
}

func ExampleNewMemory() {
	m := cache.NewMemory(256 << 20)
	defer m.Close()
	ctx := context.Background()
	var k cache.Key                 // normally the SHA-256 content key of a request
	_ = m.Put(ctx, k, []byte{0xc3}) // msgpack true
	v, ok, _ := m.Get(ctx, k)
	fmt.Println(v, ok)
	// Output: [195] true
}
