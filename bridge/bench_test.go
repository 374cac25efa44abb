package bridge_test

import (
	"testing"

	"connectrpc.com/connect"

	"github.com/arbor-rpc/arbor/bridge"

	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
)

// BenchmarkBridgeUnary is GetFeature through the bridge, called by
// connect-go's gRPC client over h2c.
func BenchmarkBridgeUnary(b *testing.B) {
	e := startB(b)
	c := connect.NewClient[pb.Point, pb.Feature](h2cB(b), e.url+pb.RouteGuideGetFeatureProcedure, connect.WithGRPC())
	b.ReportAllocs()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			if _, err := c.CallUnary(b.Context(), connect.NewRequest(patriots)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGRPCNativeUnary is GetFeature on the native gRPC server,
// called by connect-go's gRPC client over h2c.
func BenchmarkGRPCNativeUnary(b *testing.B) {
	addr := startGRPC(b, bridge.Config{}, bridge.GRPCConfig{})
	c := connect.NewClient[pb.Point, pb.Feature](h2cB(b), "http://"+addr+pb.RouteGuideGetFeatureProcedure, connect.WithGRPC())
	b.ReportAllocs()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			if _, err := c.CallUnary(b.Context(), connect.NewRequest(patriots)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
