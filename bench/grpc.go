package main

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// grpc-go with default client and server options over insecure
// credentials. The echo service is declared by hand (no protoc) and uses
// wrapperspb.BytesValue with the default proto codec.

func init() {
	register(system{
		name:  "grpc",
		note:  "google.golang.org/grpc, default options, insecure creds, wrapperspb.BytesValue",
		start: startGRPC,
	})
}

const grpcEchoMethod = "/arbor.bench.Echo/Echo"

var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: "arbor.bench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler:    grpcEchoHandler,
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "bench",
}

func grpcEchoHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.BytesValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return in, nil
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: grpcEchoMethod}
	return interceptor(ctx, in, info, func(_ context.Context, req any) (any, error) { return req, nil })
}

type grpcRunner struct {
	srv  *grpc.Server
	conn *grpc.ClientConn
}

func startGRPC(ctx context.Context) (Runner, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := grpc.NewServer()
	srv.RegisterService(&grpcEchoDesc, struct{}{})
	go srv.Serve(ln) //nolint:errcheck // returns after Stop
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return &grpcRunner{srv: srv, conn: conn}, nil
}

func (r *grpcRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	out := new(wrapperspb.BytesValue)
	if err := r.conn.Invoke(ctx, grpcEchoMethod, &wrapperspb.BytesValue{Value: payload}, out); err != nil {
		return nil, err
	}
	return out.Value, nil
}

func (r *grpcRunner) Close() error {
	err := r.conn.Close()
	r.srv.Stop()
	return err
}
