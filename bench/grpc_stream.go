package main

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// grpc-go's bidirectional echo: the EchoStream method of grpcEchoDesc
// (StreamDesc with ClientStreams and ServerStreams), written the way
// protoc-gen-go-grpc's generated code does it, on the same default-options,
// insecure-credentials server and connection as the unary grpc runner.

func init() {
	registerStream(streamSystem{
		name:  "grpc",
		note:  "google.golang.org/grpc bidi stream (ClientConn.NewStream, SendMsg/RecvMsg), default options, insecure creds, wrapperspb.BytesValue",
		start: startGRPCStream,
	})
}

// grpcEchoStreamHandler echoes every message until the client half-closes.
func grpcEchoStreamHandler(_ any, stream grpc.ServerStream) error {
	for {
		in := new(wrapperspb.BytesValue)
		if err := stream.RecvMsg(in); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := stream.SendMsg(in); err != nil {
			return err
		}
	}
}

type grpcStreamRunner struct{ *grpcRunner }

func startGRPCStream(ctx context.Context) (StreamRunner, error) {
	r, err := startGRPCWith(nil, insecure.NewCredentials(), nil)
	if err != nil {
		return nil, err
	}
	return grpcStreamRunner{r}, nil
}

func (r grpcStreamRunner) Open(ctx context.Context) (Lane, error) {
	cs, err := r.conn.NewStream(ctx, &grpcEchoDesc.Streams[0], grpcStreamMethod)
	if err != nil {
		return nil, err
	}
	return &grpcLane{cs: cs}, nil
}

// grpcLane reuses one request message per lane: SendMsg marshals it before
// returning (no stats handler or binary logger is installed to read it
// later), so only the received message is allocated per message, as in
// generated code's Recv.
type grpcLane struct {
	cs  grpc.ClientStream
	out wrapperspb.BytesValue
}

func (l *grpcLane) Send(p []byte) error {
	l.out.Value = p
	return l.cs.SendMsg(&l.out)
}

func (l *grpcLane) Recv() ([]byte, error) {
	in := new(wrapperspb.BytesValue)
	if err := l.cs.RecvMsg(in); err != nil {
		return nil, err
	}
	return in.Value, nil
}

func (l *grpcLane) CloseSend() error { return l.cs.CloseSend() }
