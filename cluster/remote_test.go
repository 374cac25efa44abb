package cluster

import (
	"errors"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/value"
)

// FuzzResolveArgs: whatever a peer sends as the argument of ResolveID, its
// decoding and parseSubtree never panic, and refuse it with
// InvalidArgument or accept a tree within the limits.
func FuzzResolveArgs(f *testing.F) {
	codec := value.For[ResolveArgs]()
	lim := request.Limits{MaxDepth: 8, MaxNodes: 64}
	for _, in := range []ResolveArgs{
		{Tree: mustTree(f, request.New("leaf+mem", 1)), Path: []int{0, 1}, Report: true},
		{Tree: mustTree(f, request.New("pair+mem", request.New("leaf+mem", 1), 2))},
		{Tree: []byte{0x93, 0xa1}},
		{Tree: mustTree(f, request.New("leaf+mem", 1)), Path: []int{-1}},
	} {
		b, err := codec.Append(nil, in)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := value.NewReader(b)
		in, err := codec.Decode(&r)
		if err != nil {
			return
		}
		n, err := parseSubtree(in, lim)
		if err != nil {
			var e *arbor.Error
			if !errors.As(err, &e) || e.Code != arbor.InvalidArgument {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		if err := n.Validate(lim); err != nil {
			t.Fatalf("accepted a tree over the limits: %v", err)
		}
	})
}

func mustTree(tb testing.TB, n *request.Node) []byte {
	b, err := request.AppendMsgpack(nil, n)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
