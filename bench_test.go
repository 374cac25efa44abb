package arbor_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
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

// BenchmarkReference compares 64 concurrent callers of one capability's
// method with 64 callers of a plain function doing the same work, on one
// connection: calls on a reference are delivered in order but run
// concurrently, so the reference should cost little.
//
//	go test -run '^$' -bench Reference -benchmem .
func BenchmarkReference(b *testing.B) {
	ctx := context.Background()
	srv := arbor.NewServer()
	add := func(ctx context.Context, a, b int) (int, error) { return a + b, nil }
	arbor.Handle2(srv, "add", add)
	svc := arbor.NewService("adder")
	arbor.Handle2(svc, "add", add)
	arbor.Handle0(srv, "adder", func(ctx context.Context) (*arbor.Service, error) { return svc, nil })
	c := start(b, netCases[0], srv).dial()
	ref, err := arbor.Call0[*arbor.Ref](ctx, c, "adder")
	if err != nil {
		b.Fatal(err)
	}
	defer ref.Close()
	for _, bc := range []struct {
		name string
		via  arbor.Caller
	}{{"function", c}, {"reference", ref}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v, err := arbor.Call2[int](ctx, bc.via, "add", 2, 3); err != nil || v != 5 {
						b.Errorf("add: %d %v", v, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkUnaryEcho1MiB is one caller echoing 1 MiB over TCP, for the
// large-payload path's copies and allocations:
//
//	go test -run '^$' -bench UnaryEcho1MiB -benchmem .
func BenchmarkUnaryEcho1MiB(b *testing.B) {
	ctx := context.Background()
	c := start(b, netCases[0], newServer(b)).dial()
	in := bytes.Repeat([]byte{7}, 1<<20)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
		if err != nil || len(out) != len(in) {
			b.Fatalf("echo: %d bytes, %v", len(out), err)
		}
	}
}

// BenchmarkSerialEcho is one caller's echo, one call after another, over
// each secure transport, at 64 bytes (a round trip's latency) and 1 MiB
// (a large payload's cost): BENCHMARKS.md's figures for QUIC beside TLS
// outside bench/, and what strace counts per call:
//
//	go test -run '^$' -bench SerialEcho -benchmem .
func BenchmarkSerialEcho(b *testing.B) {
	for _, nc := range netCases {
		if nc.name != "tls" && nc.name != "quic" {
			continue
		}
		for _, size := range []int{64, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%d", nc.name, size), func(b *testing.B) {
				ctx := context.Background()
				c := start(b, nc, newServer(b)).dial()
				in := bytes.Repeat([]byte{7}, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
					if err != nil || len(out) != len(in) {
						b.Fatalf("echo: %d bytes, %v", len(out), err)
					}
				}
			})
		}
	}
}
