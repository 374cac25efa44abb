package main

import (
	"context"
	"net"
	"net/rpc"
	"sync"
)

// The standard library's net/rpc (gob codec) over TCP, one *rpc.Client.

func init() {
	register(system{
		name:  "netrpc",
		note:  "standard net/rpc over TCP, gob codec",
		start: startNetRPC,
	})
}

// NetRPCEcho is the net/rpc service (exported: net/rpc requires it).
type NetRPCEcho struct{}

// Echo returns its argument.
func (NetRPCEcho) Echo(in []byte, out *[]byte) error {
	*out = in
	return nil
}

type netrpcRunner struct {
	ln     net.Listener
	client *rpc.Client
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startNetRPC(ctx context.Context) (Runner, error) {
	srv := rpc.NewServer()
	if err := srv.RegisterName("Echo", NetRPCEcho{}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &netrpcRunner{ln: ln}
	// Our own accept loop: rpc.Server.Accept logs on listener close.
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				srv.ServeConn(c)
			}()
		}
	}()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		r.Close()
		return nil, err
	}
	r.client = rpc.NewClient(conn)
	return r, nil
}

func (r *netrpcRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	var out []byte
	call := r.client.Go("Echo.Echo", payload, &out, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		return out, call.Error
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *netrpcRunner) Close() error {
	var err error
	if r.client != nil {
		err = r.client.Close()
	}
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}
