//go:build !noarbor

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"connectrpc.com/connect"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/bench/echopb"
	"github.com/arbor-rpc/arbor/bridge"
)

// The proto section's runners: one Arbor server with the generated Echo
// handler, served on tcp://127.0.0.1:0 and, through the bridge, on an
// h2c listener; one grpc-go server with the same messages and a
// hand-declared ServiceDesc (there is no protoc-gen-go-grpc here); one
// connection per variant.

func init() { startProto = startArborProto }

type echoImpl struct {
	echopb.UnimplementedEchoHandler
}

func (echoImpl) Echo(_ context.Context, req *echopb.EchoRequest) (*echopb.EchoResponse, error) {
	return &echopb.EchoResponse{Payload: req.GetPayload()}, nil
}

var grpcProtoDesc = grpc.ServiceDesc{
	ServiceName: echopb.EchoServiceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(echopb.EchoRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			return echoImpl{}.Echo(ctx, in)
		},
	}},
	Metadata: "echopb/echo.proto",
}

type protoRunner struct {
	payload []byte
	arbor   *echopb.EchoClient
	bridge  *grpc.ClientConn
	native  *grpc.ClientConn
	grpc    *grpc.ClientConn
	connect *grpc.ClientConn
	closers []func()
}

func startArborProto(ctx context.Context, payload []byte) (ProtoRunner, error) {
	r := &protoRunner{payload: payload}
	fail := func(err error) (ProtoRunner, error) { r.Close(); return nil, err }

	srv := arbor.NewServer()
	r.closers = append(r.closers, func() { srv.Close() })
	if err := echopb.RegisterEchoHandler(srv, echoImpl{}); err != nil {
		return fail(err)
	}
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	c, err := arbor.Dial(ctx, l.URL())
	if err != nil {
		return fail(err)
	}
	r.closers = append(r.closers, func() { c.Close() })
	r.arbor = echopb.NewEchoClient(c)

	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	hs := bridge.NewHTTPServer(bridge.New(srv, bridge.Config{NoReflection: true}))
	go hs.Serve(hl)
	r.closers = append(r.closers, func() { hs.Close() })
	if r.bridge, err = grpc.NewClient(hl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fail(err)
	}
	r.closers = append(r.closers, func() { r.bridge.Close() })

	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	ns := bridge.NewGRPCServer(bridge.New(srv, bridge.Config{NoReflection: true}), bridge.GRPCConfig{})
	go ns.Serve(nl)
	r.closers = append(r.closers, func() { ns.Close() })
	if r.native, err = grpc.NewClient(nl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fail(err)
	}
	r.closers = append(r.closers, func() { r.native.Close() })

	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.Handle(echopb.EchoEchoProcedure, connect.NewUnaryHandler(echopb.EchoEchoProcedure,
		func(ctx context.Context, req *connect.Request[echopb.EchoRequest]) (*connect.Response[echopb.EchoResponse], error) {
			res, err := echoImpl{}.Echo(ctx, req.Msg)
			if err != nil {
				return nil, err
			}
			return connect.NewResponse(res), nil
		}))
	cs := bridge.NewHTTPServer(mux)
	go cs.Serve(cl)
	r.closers = append(r.closers, func() { cs.Close() })
	if r.connect, err = grpc.NewClient(cl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fail(err)
	}
	r.closers = append(r.closers, func() { r.connect.Close() })

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(&grpcProtoDesc, nil)
	go gs.Serve(gl)
	r.closers = append(r.closers, gs.Stop)
	if r.grpc, err = grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fail(err)
	}
	r.closers = append(r.closers, func() { r.grpc.Close() })
	for _, v := range protoVariants {
		if err := r.Op(v)(ctx); err != nil {
			return fail(fmt.Errorf("%s: first call: %w", v, err))
		}
	}
	return r, nil
}

var errEcho = errors.New("echo mismatch")

func (r *protoRunner) check(res *echopb.EchoResponse, err error) error {
	if err != nil {
		return err
	}
	if !bytes.Equal(res.GetPayload(), r.payload) {
		return errEcho
	}
	return nil
}

func (r *protoRunner) Op(variant string) func(ctx context.Context) error {
	req := &echopb.EchoRequest{Payload: r.payload}
	switch variant {
	case protoArbor:
		return func(ctx context.Context) error { return r.check(r.arbor.Echo(ctx, req)) }
	case protoBridge, protoBridgeNative, protoGRPC, protoConnect:
		cc := map[string]*grpc.ClientConn{protoBridge: r.bridge, protoBridgeNative: r.native, protoGRPC: r.grpc, protoConnect: r.connect}[variant]
		return func(ctx context.Context) error {
			res := new(echopb.EchoResponse)
			return r.check(res, cc.Invoke(ctx, echopb.EchoEchoProcedure, req, res))
		}
	}
	return nil
}

func (r *protoRunner) Note(variant string) string {
	switch variant {
	case protoArbor:
		return "echopb.NewEchoClient over *arbor.Client (tcp://) → RegisterEchoHandler; protobuf binary in Arbor frames"
	case protoBridge:
		return "grpc-go ClientConn.Invoke (h2c) → bridge.New (connect-go) → Server.Invoke → the same handler"
	case protoBridgeNative:
		return "grpc-go ClientConn.Invoke (h2c) → bridge.NewGRPCServer (native HTTP/2, no net/http or connect-go) → Server.Invoke → the same handler"
	case protoGRPC:
		return "grpc-go client and server, default options, insecure creds, the same echopb messages"
	case protoConnect:
		return "grpc-go ClientConn.Invoke (h2c) → connect.NewUnaryHandler on the bridge's http.Server, no Arbor: connect-go's own floor"
	}
	return ""
}

func (r *protoRunner) Close() error {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	return nil
}
