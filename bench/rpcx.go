package main

import (
	"context"
	"fmt"
	"time"

	rpcxclient "github.com/smallnest/rpcx/client"
	"github.com/smallnest/rpcx/protocol"
	rpcxserver "github.com/smallnest/rpcx/server"
)

// rpcx (github.com/smallnest/rpcx v1.9.1): a server with one registered
// service and a client.Client (one TCP connection, calls multiplexed by
// sequence number), raw bytes (protocol.SerializeNone: no codec).

func init() {
	register(system{
		name:  "rpcx",
		note:  "github.com/smallnest/rpcx v1.9.1, client.Client on one TCP connection (calls multiplexed by seq), SerializeNone (raw []byte), default options otherwise",
		start: startRPCX,
	})
}

type rpcxEcho struct{}

// Echo is the rpcx method: (ctx, *args, *reply) error.
func (rpcxEcho) Echo(_ context.Context, args *[]byte, reply *[]byte) error {
	*reply = *args
	return nil
}

type rpcxRunner struct {
	srv    *rpcxserver.Server
	addr   string
	client *rpcxclient.Client
	done   chan struct{}
}

func startRPCX(ctx context.Context) (Runner, error) {
	srv := rpcxserver.NewServer()
	if err := srv.RegisterName("Echo", rpcxEcho{}, ""); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve("tcp", "127.0.0.1:0") //nolint:errcheck // returns after Close
	}()
	var addr string
	for deadline := time.Now().Add(5 * time.Second); ; {
		if a := srv.Address(); a != nil {
			addr = a.String()
			break
		}
		if time.Now().After(deadline) {
			srv.Close()
			return nil, fmt.Errorf("rpcx: server did not start listening")
		}
		time.Sleep(time.Millisecond)
	}
	r := &rpcxRunner{srv: srv, addr: addr, done: done}
	c, err := r.dial()
	if err != nil {
		srv.Close()
		<-done
		return nil, err
	}
	r.client = c
	return r, nil
}

func (r *rpcxRunner) dial() (*rpcxclient.Client, error) {
	opt := rpcxclient.DefaultOption
	opt.SerializeType = protocol.SerializeNone
	c := rpcxclient.NewClient(opt)
	if err := c.Connect("tcp", r.addr); err != nil {
		return nil, err
	}
	return c, nil
}

func rpcxCall(ctx context.Context, c *rpcxclient.Client, payload []byte) ([]byte, error) {
	var reply []byte
	if err := c.Call(ctx, "Echo", "Echo", payload, &reply); err != nil {
		return nil, err
	}
	return reply, nil
}

func (r *rpcxRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return rpcxCall(ctx, r.client, payload)
}

// Dial implements Dialer.
func (r *rpcxRunner) Dial(context.Context) (Runner, error) {
	c, err := r.dial()
	if err != nil {
		return nil, err
	}
	return rpcxConn{c}, nil
}

func (r *rpcxRunner) Close() error {
	r.client.Close()
	err := r.srv.Close()
	<-r.done
	return err
}

type rpcxConn struct{ c *rpcxclient.Client }

func (c rpcxConn) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return rpcxCall(ctx, c.c, payload)
}
func (c rpcxConn) Close() error { return c.c.Close() }
