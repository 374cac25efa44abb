package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// connect-go speaking the gRPC protocol over h2c (HTTP/2 without TLS, with
// prior knowledge), net/http's own HTTP/2 on both sides: what a connect-go
// user who picks the gRPC wire gets.

func init() {
	register(system{
		name:  "connect",
		note:  "connectrpc.com/connect, gRPC protocol (connect.WithGRPC) over h2c (net/http's unencrypted HTTP/2, prior knowledge), wrapperspb.BytesValue, default options",
		start: startConnect,
	})
}

const connectEchoPath = "/" + grpcService + "/Echo"

type connectRunner struct {
	srv    *http.Server
	ln     net.Listener
	url    string
	client *connect.Client[wrapperspb.BytesValue, wrapperspb.BytesValue]
	tr     *http.Transport
}

func startConnect(ctx context.Context) (Runner, error) {
	mux := http.NewServeMux()
	mux.Handle(connectEchoPath, connect.NewUnaryHandler(connectEchoPath,
		func(_ context.Context, req *connect.Request[wrapperspb.BytesValue]) (*connect.Response[wrapperspb.BytesValue], error) {
			return connect.NewResponse(req.Msg), nil
		}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protos, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // returns after Close
	r := &connectRunner{srv: srv, ln: ln, url: "http://" + ln.Addr().String()}
	r.tr, r.client = r.newClient()
	return r, nil
}

// newClient is one HTTP/2 connection's worth of client: its own transport.
func (r *connectRunner) newClient() (*http.Transport, *connect.Client[wrapperspb.BytesValue, wrapperspb.BytesValue]) {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	return tr, connect.NewClient[wrapperspb.BytesValue, wrapperspb.BytesValue](&http.Client{Transport: tr}, r.url+connectEchoPath, connect.WithGRPC())
}

func (r *connectRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := r.client.CallUnary(ctx, connect.NewRequest(&wrapperspb.BytesValue{Value: payload}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Value, nil
}

// Dial implements Dialer: a client with its own HTTP/2 connection.
func (r *connectRunner) Dial(context.Context) (Runner, error) {
	tr, c := r.newClient()
	return &connectConn{tr: tr, client: c}, nil
}

func (r *connectRunner) Close() error {
	r.tr.CloseIdleConnections()
	return errors.Join(r.srv.Close())
}

type connectConn struct {
	tr     *http.Transport
	client *connect.Client[wrapperspb.BytesValue, wrapperspb.BytesValue]
}

func (c *connectConn) Call(ctx context.Context, payload []byte) ([]byte, error) {
	resp, err := c.client.CallUnary(ctx, connect.NewRequest(&wrapperspb.BytesValue{Value: payload}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Value, nil
}

func (c *connectConn) Close() error { c.tr.CloseIdleConnections(); return nil }
