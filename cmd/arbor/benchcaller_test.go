package main

import (
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/demo"
	"github.com/arbor-rpc/arbor/value"
)

// benchCallerRig is the caller arbor bench makes for an echo of 64 bytes
// and a client of a demo server in this process, on TCP loopback.
func benchCallerRig(tb testing.TB) (caller, *arbor.Client) {
	tb.Helper()
	srv := arbor.NewServer()
	if err := demo.Register(srv); err != nil {
		tb.Fatal(err)
	}
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := arbor.Dial(context.Background(), l.URL())
	if err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); srv.Close() })
	v, err := parseArg(`"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`)
	if err != nil {
		tb.Fatal(err)
	}
	args, err := value.AppendAny(value.AppendArrayHeader(nil, 1), v)
	if err != nil {
		tb.Fatal(err)
	}
	call, err := makeCaller(benchConfig{function: "echo", args: args, nargs: 1})
	if err != nil {
		tb.Fatal(err)
	}
	return call, c
}

// BenchmarkBenchCaller is arbor bench's own per-call work around an echo
// (client and server in this process): the caller makeCaller picks, with
// the argument pre-encoded and the result skipped.
func BenchmarkBenchCaller(b *testing.B) {
	call, c := benchCallerRig(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := call(ctx, c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// arbor bench's calls allocate nothing on its side: what an echo costs
// here (client and server in this process) is the server's two, its
// handler's context and the argument's bytes. (Encoding the pre-encoded
// argument and skipping the result through reflection cost five more.)
func TestBenchCallerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	call, c := benchCallerRig(t)
	ctx := context.Background()
	one := func() {
		if err := call(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		one()
	}
	if n := testing.AllocsPerRun(2000, one); n > 2.05 {
		t.Errorf("an echo through arbor bench's caller costs %.2f allocations (client and server), want at most 2", n)
	}
}
