package resolve

import (
	"context"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
)

// tree7 is the benchmark tree: 3 levels, 7 nodes, every node cached.
func tree7() *request.Node {
	leaf := func(i int) *request.Node { return request.New("num+mem", i) }
	return request.New("add+mem",
		request.New("add+mem", leaf(1), leaf(2)),
		request.New("add+mem", leaf(3), leaf(4)))
}

// BenchmarkResolveMemoryHit7 resolves a 7-node tree whose root is in the
// memory cache: validate, key (7 SHA-256s), lookup. Target: < 2µs.
func BenchmarkResolveMemoryHit7(b *testing.B) {
	e := newEngine(b, Config{Memory: cache.NewMemory(64 << 20)})
	ctx := context.Background()
	tree := tree7()
	if _, err := e.Resolve(ctx, tree); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Resolve(ctx, tree); err != nil {
			b.Fatal(err)
		}
	}
	if e.Calls("add+mem") != 3 {
		b.Fatalf("ran %d times", e.Calls("add+mem"))
	}
}

// memoNormCatalog is a catalog with a Normalizer that has no normaliser
// for any of its functions, found in a sync.Map as tree's server catalog
// finds them: what normalisation costs a tree that needs none.
type memoNormCatalog struct {
	MapCatalog
	memo sync.Map
}

func (c *memoNormCatalog) ArgNormalizer(id string) ArgNormalizer {
	if f, ok := c.memo.Load(id); ok {
		return f.(ArgNormalizer)
	}
	c.memo.Store(id, ArgNormalizer(nil))
	return nil
}

// BenchmarkResolveMemoryHit7Normalizer is BenchmarkResolveMemoryHit7
// with a catalog that is a Normalizer (as tree's is when generated code
// is linked in): the walk that normalises the tree, finding nothing to do.
func BenchmarkResolveMemoryHit7Normalizer(b *testing.B) {
	e := newEngine(b, Config{Memory: cache.NewMemory(64 << 20), Catalog: &memoNormCatalog{MapCatalog: testCatalog()}})
	ctx := context.Background()
	tree := tree7()
	if _, err := e.Resolve(ctx, tree); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Resolve(ctx, tree); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveSubrequestHits7 resolves a 7-node tree whose root is
// not cached (none) but whose two subtrees are: two lookups, one run.
func BenchmarkResolveSubrequestHits7(b *testing.B) {
	e := newEngine(b, Config{Memory: cache.NewMemory(64 << 20)})
	ctx := context.Background()
	t := tree7()
	t.ID = "add"
	if _, err := e.Resolve(ctx, t); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Resolve(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveUncached7 runs all 7 functions every time (level none).
func BenchmarkResolveUncached7(b *testing.B) {
	e := newEngine(b, Config{})
	ctx := context.Background()
	leaf := func(i int) *request.Node { return request.New("num", i) }
	t := request.New("add", request.New("add", leaf(1), leaf(2)), request.New("add", leaf(3), leaf(4)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Resolve(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKey7(b *testing.B) {
	t := tree7()
	b.ReportAllocs()
	for b.Loop() {
		_ = t.Key()
	}
}

// nopCache keeps nothing: every Get misses.
type nopCache struct{}

func (nopCache) Get(context.Context, cache.Key) ([]byte, bool, error) { return nil, false, nil }
func (nopCache) Put(context.Context, cache.Key, []byte) error         { return nil }
func (nopCache) Stats() cache.Stats                                   { return cache.Stats{} }
func (nopCache) Close() error                                         { return nil }

// BenchmarkResolveDiskHit1KiB resolves a +full request whose 1 KiB result
// is on disk and not in memory (the memory cache keeps nothing): validate,
// key, memory miss, disk hit. Target: < 50µs.
func BenchmarkResolveDiskHit1KiB(b *testing.B) {
	d, err := cache.OpenDisk(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	cat := testCatalog()
	blob := make([]byte, 1024)
	cat["blob+full"] = Func{Args: []string{"int"}, Invoker: InvokerFunc(func(context.Context, []byte) ([]byte, error) {
		return append([]byte{0xc5, 0x04, 0x00}, blob...), nil
	})}
	e := newEngine(b, Config{Catalog: cat, Memory: nopCache{}, Secondary: d})
	ctx := context.Background()
	tree := request.New("blob+full", 1)
	if _, err := e.Resolve(ctx, tree); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Resolve(ctx, tree)
		if err != nil || len(res) != 1027 {
			b.Fatal(err)
		}
	}
	if e.Calls("blob+full") != 1 {
		b.Fatalf("ran %d times", e.Calls("blob+full"))
	}
}
