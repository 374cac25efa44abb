package request

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// allocated returns the bytes the heap allocated while f ran. TotalAlloc
// only grows, whatever the collector does, so one call is measured
// exactly (other goroutines add noise, which the bounds allow for).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allocBound is what decoding n bytes may allocate: a small multiple of
// the input, and a constant for scratch buffers and the error.
func allocBound(n int) uint64 { return 64*uint64(n) + 64<<10 }

// hostileMsgpack builds size bytes of msgpack: depth requests nested
// through their first argument, each announcing claim(bytes left) arguments
// in an array32 header, and zeros after the innermost. The old reader
// allocated every announced count (checked only against the bytes left),
// so each level could claim the whole input again.
func hostileMsgpack(size, depth int, claim func(left int) int) []byte {
	var b []byte
	var at []int
	for range depth {
		b = append(b, 0x93, 0xa1, 'f', 0xa0, 0xdd, 0, 0, 0, 0)
		at = append(at, len(b))
		b = append(b, 0x92, argRequest)
	}
	b = append(b, make([]byte, size-len(b))...)
	for _, a := range at {
		n := claim(size - a)
		b[a-4], b[a-3], b[a-2], b[a-1] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	}
	return b
}

// wideMsgpack is a root with fanout small requests as arguments and a
// last one announcing as many arguments as the bytes left allow, then
// zeros.
func wideMsgpack(size, fanout int) []byte {
	all := fanout + 1
	b := []byte{0x93, 0xa1, 'f', 0xa0, 0xdd, byte(all >> 24), byte(all >> 16), byte(all >> 8), byte(all)}
	for range fanout {
		b = append(b, 0x92, argRequest, 0x93, 0xa1, 'g', 0xa0, 0x90) // a request without arguments
	}
	b = append(b, 0x92, argRequest, 0x93, 0xa1, 'h', 0xa0, 0xdd, 0, 0, 0, 0)
	n := (size - len(b)) / minArgBytes
	b[len(b)-4], b[len(b)-3], b[len(b)-2], b[len(b)-1] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return append(b, make([]byte, size-len(b))...)
}

// The hostile 4 MiB CALL of the hardening issue: nested requests each
// announcing millions of arguments. The old reader allocated 2000 times
// the input (8 GiB for this one); now the total stays under 64 MiB and
// the error says what did not fit.
func TestHostileMsgpackTree(t *testing.T) {
	const size = 4 << 20
	const limit = 64 << 20
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"each claims all", hostileMsgpack(size, 65, func(left int) int { return left }), "do not fit"},
		{"each claims a third", hostileMsgpack(size, 65, func(left int) int { return left / minArgBytes }), "due to arguments of enclosing requests"},
		{"claims that fit together", hostileMsgpack(size, 65, func(int) int { return size / minArgBytes / 66 }), "requests nested deeper than 64"},
		{"wide", wideMsgpack(size, 1000), "an argument is [0, value] or [1, request]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			// A budget above the default, so that the checks of structure
			// are what refuses (the default refuses these at once).
			n := allocated(func() { _, _, err = ParseMsgpack(tc.in, Limits{MaxBytes: 64 << 20}) })
			if c := status.CodeOf(err); c != status.InvalidArgument && c != status.ResourceExhausted {
				t.Fatalf("got %v, want InvalidArgument or ResourceExhausted", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if len(err.Error()) > 600 {
				t.Errorf("error of %d bytes: %.200s…", len(err.Error()), err)
			}
			if n > limit || n > allocBound(len(tc.in)) {
				t.Errorf("decoding %d hostile bytes allocated %d (limit %d)", len(tc.in), n, min(limit, allocBound(len(tc.in))))
			}
			t.Logf("%d bytes: allocated %d (%.1f× the input): %v", len(tc.in), n, float64(n)/float64(len(tc.in)), err)
			var ok bool
			if n := allocated(func() { _, _, _, _, ok = MsgpackKey(tc.in, Limits{MaxBytes: 64 << 20}) }); ok || n > allocBound(len(tc.in)) {
				t.Errorf("MsgpackKey: ok %v, allocated %d", ok, n)
			}
		})
	}
}

// Eight hostile calls at once, as in the issue (which took the server past
// 12 GiB): together they stay within eight times the bound.
func TestHostileMsgpackParallel(t *testing.T) {
	in := hostileMsgpack(4<<20, 65, func(left int) int { return left / minArgBytes })
	var wg sync.WaitGroup
	n := allocated(func() {
		for range 8 {
			wg.Go(func() {
				if _, _, err := ParseMsgpack(in, Limits{}); err == nil {
					t.Error("hostile tree accepted")
				}
			})
		}
		wg.Wait()
	})
	if n > 8*allocBound(len(in)) {
		t.Fatalf("eight hostile calls allocated %d", n)
	}
}

// deepWideJSON is a request nested 64 deep whose innermost request has as
// many one-byte arguments as fit in size: the old reader built a path
// string per argument (1.3 KB each at that depth), 700 times the input.
func deepWideJSON(size int) []byte {
	var sb strings.Builder
	for range 63 {
		sb.WriteString(`{"uuid":"f","args":[`)
	}
	sb.WriteString(`{"uuid":"f","args":[1`)
	for sb.Len() < size-64*2 {
		sb.WriteString(`,1`)
	}
	sb.WriteString(`]}`)
	for range 63 {
		sb.WriteString(`]}`)
	}
	return []byte(sb.String())
}

func TestHostileJSONTree(t *testing.T) {
	in := deepWideJSON(4 << 20)
	var err error
	n := allocated(func() { _, err = ParseJSON(in, Limits{}) })
	// Two million arguments take 64 MiB of slots alone: over the default (16 MiB)
	// budget, refused before the slots are allocated.
	if status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "16777216 bytes (Limits.MaxBytes)") {
		t.Fatalf("got %v, want ResourceExhausted naming Limits.MaxBytes", err)
	}
	if !errors.Is(err, status.ErrSerialization) {
		t.Errorf("%v is not a serialization error", err)
	}
	if n > allocBound(len(in)) {
		t.Errorf("%d bytes allocated %d", len(in), n)
	}
	t.Logf("%d bytes: allocated %d (%.1f×): %v", len(in), n, float64(n)/float64(len(in)), err)

	// Within a larger budget it parses, in proportion to its size.
	var tree *Node
	n = allocated(func() { tree, err = ParseJSON(in, Limits{MaxBytes: 1 << 30}) })
	if err != nil || tree.Count(100) != 64 {
		t.Fatalf("with a 1 GiB budget: %v", err)
	}
	if n > allocBound(len(in)) {
		t.Errorf("%d bytes allocated %d", len(in), n)
	}
	t.Logf("accepted: allocated %d (%.1f×)", n, float64(n)/float64(len(in)))
}

// MaxBytes is enforced by every decoder alike, while decoding.
func TestMaxBytes(t *testing.T) {
	args := make([]any, 1000)
	for i := range args {
		args[i] = i
	}
	tree := New("f", New("g", args...), "x")
	mp, err := AppendMsgpack(nil, tree)
	if err != nil {
		t.Fatal(err)
	}
	js, err := tree.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	const small = 16 << 10 // less than 1000 argument slots
	lim := Limits{MaxBytes: small}
	if _, _, err := ParseMsgpack(mp, Limits{MaxBytes: 64 << 10}); err != nil {
		t.Fatalf("msgpack within budget: %v", err)
	}
	if _, err := ParseJSON(js, Limits{MaxBytes: 64 << 10}); err != nil {
		t.Fatalf("JSON within budget: %v", err)
	}
	for name, err := range map[string]error{
		"msgpack": second3(ParseMsgpack(mp, lim)),
		"JSON":    second(ParseJSON(js, lim)),
	} {
		if status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "16384 bytes (Limits.MaxBytes)") || !strings.Contains(err.Error(), "args.tuple_element0") {
			t.Errorf("%s: got %v, want ResourceExhausted naming the limit and the path", name, err)
		}
	}
	if _, _, _, _, ok := MsgpackKey(mp, lim); ok {
		t.Error("MsgpackKey accepted a tree over the budget")
	}
	if _, _, _, _, ok := MsgpackKey(mp, Limits{}); !ok {
		t.Error("MsgpackKey refused a tree within the default budget")
	}
	// Re-encoded values count too: a non-canonical value of 20000 bytes.
	big := append([]byte{0xdb, 0, 0, 0x4e, 0x20}, make([]byte, 20000)...) // str32, shortest is str16
	raw := value.AppendArrayHeader(nil, 3)
	raw = value.AppendString(raw, "f")
	raw = value.AppendString(raw, "")
	raw = value.AppendArrayHeader(raw, 1)
	raw = append(append(raw, 0x92, argValue), big...)
	if _, _, err := ParseMsgpack(raw, lim); status.CodeOf(err) != status.ResourceExhausted {
		t.Errorf("re-encoded value over the budget: %v", err)
	}
	if DefaultLimits.MaxBytes != 16<<20 || (Limits{}).OrDefault().MaxBytes != 16<<20 {
		t.Errorf("default MaxBytes = %d", DefaultLimits.MaxBytes)
	}
}

func second[T any](_ T, err error) error          { return err }
func second3[T, U any](_ T, _ U, err error) error { return err }

// Canonicalizing maps nested many deep used to copy the whole value once
// per level into a new buffer (126 times a big leaf at depth 63).
func TestCanonicalNestedAllocation(t *testing.T) {
	in := nestedUnsortedMaps(63, 256<<10)
	var out []byte
	var err error
	n := allocated(func() { out, err = Canonical(in) })
	if err != nil {
		t.Fatal(err)
	}
	if n > 4*uint64(len(in))+64<<10 {
		t.Errorf("canonicalizing %d bytes allocated %d", len(in), n)
	}
	t.Logf("%d bytes: allocated %d (%.1f×)", len(in), n, float64(n)/float64(len(in)))
	// The result is sorted at every level: "a" before "b".
	c, err := Canonical(out)
	if err != nil || &c[0] != &out[0] {
		t.Fatalf("result is not canonical: %v", err)
	}
	if out[0] != 0x82 || string(out[1:3]) != "\xa1a" {
		t.Fatalf("outer map not sorted: % x", out[:8])
	}
}

// nestedUnsortedMaps is depth maps {"b": 1 (as int8, not shortest), "a":
// <next>} around a leaf string of leaf bytes.
func nestedUnsortedMaps(depth, leaf int) []byte {
	var b []byte
	for range depth {
		b = append(b, 0x82, 0xa1, 'b', 0xd0, 0x01, 0xa1, 'a')
	}
	return value.AppendString(b, strings.Repeat("x", leaf))
}
