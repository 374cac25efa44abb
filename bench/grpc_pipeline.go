package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The pipeline section's grpc-go runner: a hand-written ServiceDesc with
// one unary method, Add, whose request is a structpb.ListValue of the two
// operands and whose response is a wrapperspb.Int64Value (default proto
// codec, default options, insecure credentials). A chain of dependent
// calls is done the only way grpc can: sequential unary calls, each using
// the previous result.

func init() {
	registerPipeline(pipelineSystem{
		name:  "grpc",
		chain: "sequential unary calls, each waiting for the previous result",
		note:  "grpc-go, default options, insecure creds; Add(structpb.ListValue{a, b}) returns wrapperspb.Int64Value (hand-written ServiceDesc)",
		start: startGRPCPipeline,
	})
}

const (
	grpcMathService = "arbor.bench.Math"
	grpcAddMethod   = "/" + grpcMathService + "/Add"
)

var grpcMathDesc = grpc.ServiceDesc{
	ServiceName: grpcMathService,
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Add", Handler: grpcAddHandler}},
	Metadata:    "bench",
}

func grpcAdd(_ context.Context, req any) (any, error) {
	vs := req.(*structpb.ListValue).GetValues()
	if len(vs) != 2 {
		return nil, fmt.Errorf("add: %d operands, want 2", len(vs))
	}
	return wrapperspb.Int64(int64(vs[0].GetNumberValue()) + int64(vs[1].GetNumberValue())), nil
}

func grpcAddHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(structpb.ListValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return grpcAdd(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: grpcAddMethod}, grpcAdd)
}

type grpcPipeline struct {
	srv   *grpc.Server
	proxy *linkProxy
	conn  *grpc.ClientConn
}

func startGRPCPipeline(ctx context.Context, linkDelay time.Duration) (PipelineRunner, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	srv.RegisterService(&grpcMathDesc, struct{}{})
	go srv.Serve(ln) //nolint:errcheck // returns after Stop
	proxy, err := startLinkProxy(ln.Addr().String(), linkDelay)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	conn, err := grpc.NewClient(proxy.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		proxy.Close()
		srv.Stop()
		return nil, err
	}
	return &grpcPipeline{srv: srv, proxy: proxy, conn: conn}, nil
}

func (g *grpcPipeline) add(ctx context.Context, a, b int) (int, error) {
	in := &structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(float64(a)), structpb.NewNumberValue(float64(b))}}
	out := new(wrapperspb.Int64Value)
	if err := g.conn.Invoke(ctx, grpcAddMethod, in, out); err != nil {
		return 0, err
	}
	return int(out.GetValue()), nil
}

func (g *grpcPipeline) One(ctx context.Context) (int, error) { return g.add(ctx, 1, 1) }

func (g *grpcPipeline) Chain(ctx context.Context, n int) (int, error) {
	v := 0
	for range n {
		var err error
		if v, err = g.add(ctx, v, 1); err != nil {
			return 0, err
		}
	}
	return v, nil
}

func (g *grpcPipeline) Close() error {
	err := g.conn.Close()
	g.proxy.Close()
	g.srv.Stop()
	return err
}
