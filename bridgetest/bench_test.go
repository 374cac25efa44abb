package bridgetest

import (
	"context"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/arbor-rpc/arbor/bridge"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
)

// grpc-go's client calling GetFeature on the native server and on
// grpc-go's own server (the same answer, a hand-declared ServiceDesc), at
// 1, 16 and 64 callers on one connection. Compare the two with -benchmem
// and several -count runs: the machine's load moves both.

var getFeatureDesc = grpc.ServiceDesc{
	ServiceName: "routeguide.RouteGuide",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "GetFeature",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(pb.Point)
			if err := dec(in); err != nil {
				return nil, err
			}
			return &pb.Feature{Name: patriotsName, Location: in}, nil
		},
	}},
}

func benchUnary(b *testing.B, addr string) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	for _, c := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, c/2))
			call := func() {
				var f pb.Feature
				if err := cc.Invoke(b.Context(), pb.RouteGuideGetFeatureProcedure, patriots, &f); err != nil {
					b.Error(err)
				}
			}
			if c == 1 {
				for b.Loop() {
					call()
				}
				return
			}
			b.RunParallel(func(p *testing.PB) {
				for p.Next() {
					call()
				}
			})
		})
	}
}

func BenchmarkUnaryNative(b *testing.B) {
	benchUnary(b, startNative(b, nil, bridge.Config{NoReflection: true}, bridge.GRPCConfig{}))
}

func BenchmarkUnaryGRPCGo(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(&getFeatureDesc, nil)
	go gs.Serve(l)
	defer gs.Stop()
	benchUnary(b, l.Addr().String())
}
