package main

import (
	"context"
	"errors"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// grpc-go with default client and server options over insecure
// credentials (or TLS, for the transports section). The echo service is
// declared by hand (no protoc) and uses wrapperspb.BytesValue with the
// default proto codec. Its bidirectional streaming method is in
// grpc_stream.go.

func init() {
	register(system{
		name:  "grpc",
		note:  "google.golang.org/grpc, default options, insecure creds, wrapperspb.BytesValue",
		start: startGRPC,
	})
	registerTransport(transportSystem{
		system: "grpc", transport: "tcp",
		note:  "insecure creds (the unary section's grpc)",
		start: startGRPC,
	})
	registerTransport(transportSystem{
		system: "grpc", transport: "tls",
		note:  "credentials.NewServerTLSFromFile / NewClientTLSFromFile with the same throwaway certificates (TLS 1.3 negotiated)",
		start: startGRPCTLS,
	})
}

const (
	grpcService      = "arbor.bench.Echo"
	grpcEchoMethod   = "/" + grpcService + "/Echo"
	grpcStreamMethod = "/" + grpcService + "/EchoStream"
)

var grpcEchoDesc = grpc.ServiceDesc{
	ServiceName: grpcService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler:    grpcEchoHandler,
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "EchoStream",
		Handler:       grpcEchoStreamHandler,
		ServerStreams: true,
		ClientStreams: true,
	}},
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
	srv     *grpc.Server // nil for a dialed connection
	conn    *grpc.ClientConn
	cleanup func()
	addr    string
	creds   credentials.TransportCredentials
}

func startGRPC(ctx context.Context) (Runner, error) {
	r, err := startGRPCWith(nil, insecure.NewCredentials(), nil)
	if err != nil {
		return nil, err // not a nil *grpcRunner in a non-nil Runner
	}
	return r, nil
}

// startGRPCTLS is startGRPC over TLS with the throwaway certificates.
func startGRPCTLS(ctx context.Context) (Runner, error) {
	f, err := writeCerts()
	if err != nil {
		return nil, err
	}
	cleanup := func() { os.RemoveAll(f.dir) }
	screds, err := credentials.NewServerTLSFromFile(f.certFile, f.keyFile)
	if err != nil {
		cleanup()
		return nil, err
	}
	ccreds, err := credentials.NewClientTLSFromFile(f.caFile, "127.0.0.1")
	if err != nil {
		cleanup()
		return nil, err
	}
	r, err := startGRPCWith([]grpc.ServerOption{grpc.Creds(screds)}, ccreds, cleanup)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// startGRPCWith serves the echo service on loopback TCP and makes one
// client connection. cleanup, if not nil, runs after Close (or a failed
// start).
func startGRPCWith(sopts []grpc.ServerOption, creds credentials.TransportCredentials, cleanup func()) (*grpcRunner, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if cleanup != nil {
			cleanup()
		}
		return nil, err
	}
	srv := grpc.NewServer(sopts...)
	srv.RegisterService(&grpcEchoDesc, struct{}{})
	go srv.Serve(ln) //nolint:errcheck // returns after Stop
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		srv.Stop()
		if cleanup != nil {
			cleanup()
		}
		return nil, err
	}
	return &grpcRunner{srv: srv, conn: conn, cleanup: cleanup, addr: ln.Addr().String(), creds: creds}, nil
}

func init() {
	registerRemote(remoteSystem{name: "grpc",
		serve: func(context.Context) (string, func(), error) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "", nil, err
			}
			srv := grpc.NewServer()
			srv.RegisterService(&grpcEchoDesc, struct{}{})
			go srv.Serve(ln) //nolint:errcheck // returns after Stop
			return ln.Addr().String(), srv.Stop, nil
		},
		dial: func(_ context.Context, addr string) (Runner, error) { return dialGRPC(addr, insecure.NewCredentials()) },
	})
}

// grpc-tls in a child process: as arbor-tls, its address comes with the
// CA file (withCA).
func init() {
	registerRemote(remoteSystem{name: "grpc-tls",
		serve: func(context.Context) (string, func(), error) {
			f, err := writeCerts()
			if err != nil {
				return "", nil, err
			}
			creds, err := credentials.NewServerTLSFromFile(f.certFile, f.keyFile)
			if err != nil {
				os.RemoveAll(f.dir)
				return "", nil, err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				os.RemoveAll(f.dir)
				return "", nil, err
			}
			srv := grpc.NewServer(grpc.Creds(creds))
			srv.RegisterService(&grpcEchoDesc, struct{}{})
			go srv.Serve(ln) //nolint:errcheck // returns after Stop
			return withCA(ln.Addr().String(), f.caFile), func() { srv.Stop(); os.RemoveAll(f.dir) }, nil
		},
		dial: func(_ context.Context, addr string) (Runner, error) {
			hostport, ca, err := splitCA(addr)
			if err != nil {
				return nil, err
			}
			creds, err := credentials.NewClientTLSFromFile(ca, "127.0.0.1")
			if err != nil {
				return nil, err
			}
			return dialGRPC(hostport, creds)
		},
	})
}

// dialGRPC is a client connection alone (Close closes only it).
func dialGRPC(addr string, creds credentials.TransportCredentials) (Runner, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	return &grpcRunner{conn: conn}, nil
}

// Dial implements Dialer: a new ClientConn (its own HTTP/2 connection).
func (r *grpcRunner) Dial(context.Context) (Runner, error) {
	if r.srv == nil {
		return nil, errors.New("grpc: not a server's runner")
	}
	return dialGRPC(r.addr, r.creds)
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
	if r.srv != nil {
		r.srv.Stop()
	}
	if r.cleanup != nil {
		r.cleanup()
	}
	return err
}
