package main

import (
	"context"
	"fmt"
	"net"

	"storj.io/drpc"
	"storj.io/drpc/drpcconn"
	"storj.io/drpc/drpcmux"
	"storj.io/drpc/drpcserver"
)

// storj.io/drpc over one TCP connection, with a hand-written Description and
// a raw-bytes Encoding (no protobuf). A drpc connection carries one call at a
// time: concurrent callers queue for it. That is drpc's real behavior and is
// reported as is.

func init() {
	register(system{
		name:  "drpc",
		note:  "storj.io/drpc, raw-bytes encoding; one call at a time per conn (callers queue)",
		start: startDRPC,
	})
}

const drpcEchoRPC = "/arbor.bench.Echo/Echo"

// drpcMsg is the message type: just the bytes.
type drpcMsg struct{ b []byte }

// drpcRaw is a drpc.Encoding that sends drpcMsg.b as is.
type drpcRaw struct{}

func (drpcRaw) Marshal(msg drpc.Message) ([]byte, error) {
	m, ok := msg.(*drpcMsg)
	if !ok {
		return nil, fmt.Errorf("drpc bench: cannot marshal %T", msg)
	}
	return m.b, nil
}

// MarshalAppend lets drpc encode into its own reused buffer.
func (drpcRaw) MarshalAppend(buf []byte, msg drpc.Message) ([]byte, error) {
	m, ok := msg.(*drpcMsg)
	if !ok {
		return nil, fmt.Errorf("drpc bench: cannot marshal %T", msg)
	}
	return append(buf, m.b...), nil
}

// Unmarshal copies: drpc reuses buf after Unmarshal returns.
func (drpcRaw) Unmarshal(buf []byte, msg drpc.Message) error {
	m, ok := msg.(*drpcMsg)
	if !ok {
		return fmt.Errorf("drpc bench: cannot unmarshal into %T", msg)
	}
	m.b = append(make([]byte, 0, len(buf)), buf...)
	return nil
}

type drpcEchoServer struct{}

func (*drpcEchoServer) Echo(_ context.Context, in *drpcMsg) (*drpcMsg, error) { return in, nil }

// drpcEchoDesc is what drpc's code generator would emit for one unary method.
type drpcEchoDesc struct{}

func (drpcEchoDesc) NumMethods() int { return 1 }

func (drpcEchoDesc) Method(n int) (string, drpc.Encoding, drpc.Receiver, any, bool) {
	if n != 0 {
		return "", nil, nil, nil, false
	}
	recv := func(srv any, ctx context.Context, in1, _ any) (drpc.Message, error) {
		return srv.(*drpcEchoServer).Echo(ctx, in1.(*drpcMsg))
	}
	return drpcEchoRPC, drpcRaw{}, recv, (*drpcEchoServer).Echo, true
}

type drpcRunner struct {
	conn   *drpcconn.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func startDRPC(ctx context.Context) (Runner, error) {
	mux := drpcmux.New()
	if err := mux.Register(&drpcEchoServer{}, drpcEchoDesc{}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := drpcserver.New(mux)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(sctx, ln) // closes ln when sctx ends
	}()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		cancel()
		<-done
		return nil, err
	}
	return &drpcRunner{conn: drpcconn.New(raw), cancel: cancel, done: done}, nil
}

func (r *drpcRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	var out drpcMsg
	if err := r.conn.Invoke(ctx, drpcEchoRPC, drpcRaw{}, &drpcMsg{b: payload}, &out); err != nil {
		return nil, err
	}
	return out.b, nil
}

func (r *drpcRunner) Close() error {
	err := r.conn.Close()
	r.cancel()
	<-r.done
	return err
}
