package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"capnproto.org/go/capnp/v3"
	"capnproto.org/go/capnp/v3/rpc"

	"github.com/arbor-rpc/arbor/bench/capnppb"
)

// Cap'n Proto (capnproto.org/go/capnp/v3 v3.1.0-alpha.1), level-1 RPC over
// TCP with the standard (unpacked) stream transport: the echo as
// Echo.echo(Data) -> Data on the bootstrap capability, and the pipelined
// chain as Calc.add(Value, Int64) -> Value, each add's argument the
// promised result of the previous one (capnppb/echo.capnp; the generated
// code is checked in).

func init() {
	register(system{
		name:  "capnp",
		note:  "capnproto.org/go/capnp/v3 v3.1.0-alpha.1, rpc.NewConn over one TCP connection (stream transport, unpacked), Echo.echo(Data) on the bootstrap capability",
		start: startCapnp,
	})
	registerPipeline(pipelineSystem{
		name:  "capnp",
		chain: "promise pipelining: each add takes the previous add's promised Value capability, then one read",
		note:  "capnproto.org/go/capnp/v3 v3.1.0-alpha.1, Calc.const(1) then add(prev, 1) × (n-1) on promised Values, then Value.read(); one call is const(2).read(), pipelined",
		start: startCapnpPipeline,
	})
}

type capnpEcho struct{}

func (capnpEcho) Echo(_ context.Context, call capnppb.Echo_echo) error {
	p, err := call.Args().Payload()
	if err != nil {
		return err
	}
	res, err := call.AllocResults()
	if err != nil {
		return err
	}
	return res.SetPayload(p)
}

// capnpServer accepts TCP connections and serves boot on each.
type capnpServer struct {
	ln    net.Listener
	boot  func() capnp.Client
	mu    sync.Mutex
	conns []*rpc.Conn
	done  chan struct{}
}

func startCapnpServer(boot func() capnp.Client) (*capnpServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &capnpServer{ln: ln, boot: boot, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := rpc.NewConn(rpc.NewStreamTransport(nc), &rpc.Options{BootstrapClient: s.boot()})
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
		}
	}()
	return s, nil
}

func (s *capnpServer) Close() error {
	err := s.ln.Close()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	return err
}

// capnpClient is one client connection and its bootstrap capability.
type capnpClient struct {
	conn *rpc.Conn
	boot capnp.Client
}

func dialCapnp(ctx context.Context, addr string) (*capnpClient, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := rpc.NewConn(rpc.NewStreamTransport(nc), nil)
	boot := c.Bootstrap(ctx)
	if err := boot.Resolve(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return &capnpClient{conn: c, boot: boot}, nil
}

func (c *capnpClient) Close() error {
	c.boot.Release()
	return c.conn.Close()
}

func (c *capnpClient) Call(ctx context.Context, payload []byte) ([]byte, error) {
	f, release := capnppb.Echo(c.boot).Echo(ctx, func(p capnppb.Echo_echo_Params) error { return p.SetPayload(payload) })
	defer release()
	res, err := f.Struct()
	if err != nil {
		return nil, err
	}
	out, err := res.Payload()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), out...), nil // the message is released with the answer
}

type capnpRunner struct {
	*capnpClient
	srv *capnpServer
}

func startCapnp(ctx context.Context) (Runner, error) {
	srv, err := startCapnpServer(func() capnp.Client { return capnp.Client(capnppb.Echo_ServerToClient(capnpEcho{})) })
	if err != nil {
		return nil, err
	}
	c, err := dialCapnp(ctx, srv.ln.Addr().String())
	if err != nil {
		srv.Close()
		return nil, err
	}
	return &capnpRunner{capnpClient: c, srv: srv}, nil
}

// Dial implements Dialer.
func (r *capnpRunner) Dial(ctx context.Context) (Runner, error) {
	return dialCapnp(ctx, r.srv.ln.Addr().String())
}

func (r *capnpRunner) Close() error {
	return errors.Join(r.capnpClient.Close(), r.srv.Close())
}

// The calculator: Values hold numbers; add reads its argument (a local
// capability on the server, or the promise of one) and returns a new
// Value.

type capnpValue struct{ n int64 }

func (v capnpValue) Read(_ context.Context, call capnppb.Value_read) error {
	res, err := call.AllocResults()
	if err != nil {
		return err
	}
	res.SetN(v.n)
	return nil
}

type capnpCalc struct{}

func (capnpCalc) Const(_ context.Context, call capnppb.Calc_const) error {
	res, err := call.AllocResults()
	if err != nil {
		return err
	}
	return res.SetValue(capnppb.Value_ServerToClient(capnpValue{call.Args().N()}))
}

func (capnpCalc) Add(ctx context.Context, call capnppb.Calc_add) error {
	a := call.Args().A()
	b := call.Args().B()
	f, release := a.Read(ctx, nil)
	defer release()
	r, err := f.Struct()
	if err != nil {
		return err
	}
	res, err := call.AllocResults()
	if err != nil {
		return err
	}
	return res.SetSum(capnppb.Value_ServerToClient(capnpValue{r.N() + b}))
}

type capnpPipeline struct {
	srv   *capnpServer
	proxy *linkProxy
	c     *capnpClient
}

func startCapnpPipeline(ctx context.Context, linkDelay time.Duration) (PipelineRunner, error) {
	srv, err := startCapnpServer(func() capnp.Client { return capnp.Client(capnppb.Calc_ServerToClient(capnpCalc{})) })
	if err != nil {
		return nil, err
	}
	proxy, err := startLinkProxy(srv.ln.Addr().String(), linkDelay)
	if err != nil {
		srv.Close()
		return nil, err
	}
	c, err := dialCapnp(ctx, proxy.Addr())
	if err != nil {
		proxy.Close()
		srv.Close()
		return nil, err
	}
	return &capnpPipeline{srv: srv, proxy: proxy, c: c}, nil
}

func (p *capnpPipeline) read(v capnppb.Value) (int, error) {
	f, release := v.Read(context.Background(), nil)
	defer release()
	r, err := f.Struct()
	if err != nil {
		return 0, err
	}
	return int(r.N()), nil
}

func (p *capnpPipeline) One(ctx context.Context) (int, error) {
	calc := capnppb.Calc(p.c.boot)
	f, release := calc.Const(ctx, func(a capnppb.Calc_const_Params) error { a.SetN(2); return nil })
	defer release()
	return p.read(f.Value())
}

func (p *capnpPipeline) Chain(ctx context.Context, n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("chain of %d", n)
	}
	calc := capnppb.Calc(p.c.boot)
	f, release := calc.Const(ctx, func(a capnppb.Calc_const_Params) error { a.SetN(1); return nil })
	releases := []capnp.ReleaseFunc{release}
	defer func() {
		for i := len(releases) - 1; i >= 0; i-- {
			releases[i]()
		}
	}()
	v := f.Value()
	for range n - 1 {
		prev := v
		af, rel := calc.Add(ctx, func(a capnppb.Calc_add_Params) error {
			a.SetB(1)
			return a.SetA(prev.AddRef())
		})
		releases = append(releases, rel)
		v = af.Sum()
	}
	return p.read(v)
}

func (p *capnpPipeline) Close() error {
	err := p.c.Close()
	p.proxy.Close()
	return errors.Join(err, p.srv.Close())
}
