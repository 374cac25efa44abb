package resolve

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/value"
)

// mod10Catalog is testCatalog whose "mod" functions take integers modulo
// 10: 13 and 3 are one value, normalised to 3. "bad" fails to normalise
// argument 1, "panics" panics.
type mod10Catalog struct {
	MapCatalog
	mu    sync.Mutex
	asked map[string]int // ArgNormalizer calls by id
}

func newMod10Catalog() *mod10Catalog {
	m := testCatalog()
	for _, lvl := range []string{"", "+mem", "+mem_vb"} {
		m["mod"+lvl] = intFunc(1, add)
		m["mod2"+lvl] = intFunc(2, add)
	}
	m["bad+mem"] = intFunc(2, add)
	m["panics+mem"] = intFunc(1, add)
	return &mod10Catalog{MapCatalog: m, asked: map[string]int{}}
}

func (c *mod10Catalog) ArgNormalizer(id string) ArgNormalizer {
	c.mu.Lock()
	c.asked[id]++
	c.mu.Unlock()
	switch {
	case strings.HasPrefix(id, "mod"):
		return func(_ int, v []byte) ([]byte, error) {
			r := value.NewReader(v)
			x, err := r.ReadInt()
			if err != nil {
				return nil, err
			}
			if x%10 == x {
				return v, nil
			}
			return value.AppendInt(nil, x%10), nil
		}
	case id == "bad+mem":
		return func(i int, v []byte) ([]byte, error) {
			if i == 1 {
				return nil, status.New(status.Internal, "not a value of the type")
			}
			return v, nil
		}
	case id == "panics+mem":
		return func(int, []byte) ([]byte, error) { panic("normaliser bug") }
	}
	return nil
}

// Equal values in two encodings: one key, one run, and the function
// sees the normal form.
func TestNormalizeOneKey(t *testing.T) {
	e := newEngine(t, Config{Catalog: newMod10Catalog()})
	for _, x := range []int64{13, 3, 23} {
		if got := resolveInt(t, e, request.New("mod+mem", x)); got != 3 {
			t.Fatalf("mod+mem(%d) = %d, want 3 (the function runs on the normal form)", x, got)
		}
	}
	if n := e.Calls("mod+mem"); n != 1 {
		t.Fatalf("mod+mem ran %d times for one value in three encodings, want 1", n)
	}
}

// The caller's tree is never modified; the engine works on a copy.
func TestNormalizeCopiesOnWrite(t *testing.T) {
	e := newEngine(t, Config{Catalog: newMod10Catalog()})
	sub := request.New("mod", 17)
	tree := request.New("add+mem", sub, request.New("num", 4))
	before, err := request.AppendMsgpack(nil, tree)
	if err != nil {
		t.Fatal(err)
	}
	if got := resolveInt(t, e, tree); got != 11 {
		t.Fatalf("got %d, want 7+4", got)
	}
	if after, _ := request.AppendMsgpack(nil, tree); !bytes.Equal(before, after) || tree.Args[0].Node != sub {
		t.Fatalf("the caller's tree changed")
	}
}

// A cached parent's key covers its children's literal arguments, cached
// or not: they are normalised, and the second tree hits at the root.
func TestNormalizeUnderCachedParent(t *testing.T) {
	e := newEngine(t, Config{Catalog: newMod10Catalog()})
	resolveInt(t, e, request.New("add+mem", request.New("mod", 15), 1))
	resolveInt(t, e, request.New("add+mem", request.New("mod", 5), 1))
	if e.Calls("add+mem") != 1 || e.Calls("mod") != 1 {
		t.Fatalf("add+mem ran %d times, mod %d; want 1 and 1", e.Calls("add+mem"), e.Calls("mod"))
	}
}

// No key covers the requests of an uncached tree: their arguments are
// passed as given, and the catalog is not asked.
func TestNormalizeOnlyKeyed(t *testing.T) {
	c := newMod10Catalog()
	e := newEngine(t, Config{Catalog: c})
	if got := resolveInt(t, e, request.New("add", request.New("mod", 15), 1)); got != 16 {
		t.Fatalf("got %d, want 16 (mod's argument as given)", got)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.asked) != 0 {
		t.Fatalf("asked for normalisers of an uncached tree: %v", c.asked)
	}
}

// A value-based level keys on its subrequests' results, normalised.
func TestNormalizeValueBasedResults(t *testing.T) {
	e := newEngine(t, Config{Catalog: newMod10Catalog()})
	for _, tree := range []*request.Node{
		request.New("mod+mem_vb", request.New("num", 12)),
		request.New("mod+mem_vb", request.New("add", 20, 2)),
		request.New("mod+mem_vb", 32),
	} {
		if got := resolveInt(t, e, tree); got != 2 {
			t.Fatalf("got %d, want 2", got)
		}
	}
	if n := e.Calls("mod+mem_vb"); n != 1 {
		t.Fatalf("mod+mem_vb ran %d times for one normal value, want 1", n)
	}
}

// Submit and ResolveHere normalise as Resolve does.
func TestNormalizeSubmitAndResolveHere(t *testing.T) {
	e := newEngine(t, Config{Catalog: newMod10Catalog()})
	ctx := testContext(t)
	id, err := e.Submit(ctx, request.New("mod+mem", 44))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := e.Result(ctx, id); err != nil || !bytes.Equal(res, value.AppendInt(nil, 4)) {
		t.Fatalf("submitted: %x, %v", res, err)
	}
	if res, err := e.ResolveHere(ctx, request.New("mod+mem", 4), []int{1}, nil); err != nil || !bytes.Equal(res, value.AppendInt(nil, 4)) {
		t.Fatalf("ResolveHere: %x, %v", res, err)
	}
	if n := e.Calls("mod+mem"); n != 1 {
		t.Fatalf("mod+mem ran %d times, want 1", n)
	}
}

// A value the normaliser refuses fails the tree before anything runs,
// naming the path, the function and the argument; a panic is an Internal
// error, not a crash.
func TestNormalizeErrors(t *testing.T) {
	e := newEngine(t, Config{Catalog: newMod10Catalog()})
	ctx := testContext(t)
	_, err := e.Resolve(ctx, request.New("add+mem", 1, request.New("bad+mem", 1, 2)))
	if status.CodeOf(err) != status.InvalidArgument {
		t.Fatalf("refused value: %v, want InvalidArgument", err)
	}
	for _, want := range []string{"args.tuple_element1", "bad+mem", "argument 1", "not a value of the type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := e.Submit(ctx, request.New("bad+mem", 1, 2)); status.CodeOf(err) != status.InvalidArgument {
		t.Fatalf("Submit: %v", err)
	}
	_, err = e.Resolve(ctx, request.New("panics+mem", 1))
	if status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "normaliser bug") {
		t.Fatalf("panicking normaliser: %v", err)
	}
	if e.Calls("bad+mem")+e.Calls("add+mem")+e.Calls("panics+mem") != 0 {
		t.Fatalf("functions ran on refused arguments")
	}
}
