package arbor_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// BenchmarkUnaryEcho measures 64-byte unary echoes over TCP loopback from
// 32×GOMAXPROCS goroutines sharing one Client. Allocations are counted
// for client and server together.
func BenchmarkUnaryEcho(b *testing.B) {
	ctx := context.Background()
	c := start(b, netCases[0], newServer(b)).dial()
	in := bytes.Repeat([]byte{7}, 64)
	if _, err := arbor.Call1[[]byte](ctx, c, "echo", in); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
			if err != nil || len(out) != len(in) {
				b.Errorf("echo: %d bytes, %v", len(out), err)
				return
			}
		}
	})
}
