//go:build kitex

// Kitex links only with -ldflags=-checklinkname=0 (its dependency
// cloudwego/dynamicgo reaches into encoding/json by linkname, which Go
// refuses by default), so it is behind the kitex build tag: make bench
// sets both.

package main

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/cloudwego/gopkg/protocol/thrift"
	"github.com/cloudwego/kitex/client"
	"github.com/cloudwego/kitex/pkg/klog"
	"github.com/cloudwego/kitex/pkg/serviceinfo"
	"github.com/cloudwego/kitex/pkg/transmeta"
	"github.com/cloudwego/kitex/server"
)

// Kitex (github.com/cloudwego/kitex) with its multiplexed transport
// (server.WithMuxTransport, client.WithMuxConnection(1): TTHeader frames,
// calls multiplexed by sequence id on one netpoll connection), over a
// Thrift service Echo.Echo(1: binary payload) -> binary. The service info
// and the argument and result types (kitexArgs, kitexResult, with the
// FastCodec methods Kitex's codec uses) are written by hand in the shape
// the kitex tool generates, for this IDL:
//
//	service Echo { binary Echo(1: binary payload) }
//
// (kitex's binary generic would need no types, but Kitex refuses it over
// the mux transport: "unexpected Args reader type".)

func init() {
	register(system{
		name:  "kitex",
		note:  "github.com/cloudwego/kitex v0.15.2, multiplexed transport (server.WithMuxTransport, client.WithMuxConnection(1), TTHeader), Thrift binary field, FastCodec types in the kitex tool's shape",
		start: startKitex,
	})
}

const kitexMethod = "Echo"

// kitexArgs is Echo_Echo_args: field 1, binary payload.
type kitexArgs struct{ Payload []byte }

func (p *kitexArgs) GetFirstArgument() any { return p.Payload }

func (p *kitexArgs) FastRead(buf []byte) (int, error) {
	return kitexReadBinaryStruct(buf, 1, &p.Payload)
}
func (p *kitexArgs) FastWrite(buf []byte) int { return p.FastWriteNocopy(buf, nil) }
func (p *kitexArgs) FastWriteNocopy(buf []byte, w thrift.NocopyWriter) int {
	return kitexWriteBinaryStruct(buf, w, 1, p.Payload)
}
func (p *kitexArgs) BLength() int { return kitexBinaryStructLength(p.Payload) }

// kitexResult is Echo_Echo_result: field 0 (success), binary.
type kitexResult struct{ Success []byte }

func (p *kitexResult) GetResult() any           { return p.Success }
func (p *kitexResult) SetSuccess(x any)         { p.Success, _ = x.([]byte) }
func (p *kitexResult) FastWrite(buf []byte) int { return p.FastWriteNocopy(buf, nil) }
func (p *kitexResult) FastRead(buf []byte) (int, error) {
	return kitexReadBinaryStruct(buf, 0, &p.Success)
}
func (p *kitexResult) FastWriteNocopy(buf []byte, w thrift.NocopyWriter) int {
	return kitexWriteBinaryStruct(buf, w, 0, p.Success)
}
func (p *kitexResult) BLength() int { return kitexBinaryStructLength(p.Success) }

// kitexReadBinaryStruct reads a struct whose field id is a binary into
// *dst (a copy), skipping other fields.
func kitexReadBinaryStruct(buf []byte, id int16, dst *[]byte) (int, error) {
	off := 0
	for {
		t, fid, l, err := thrift.Binary.ReadFieldBegin(buf[off:])
		off += l
		if err != nil {
			return off, err
		}
		if t == thrift.STOP {
			return off, nil
		}
		if fid == id && t == thrift.STRING {
			v, l, err := thrift.Binary.ReadBinary(buf[off:])
			off += l
			if err != nil {
				return off, err
			}
			*dst = v
			continue
		}
		l, err = thrift.Binary.Skip(buf[off:], t)
		off += l
		if err != nil {
			return off, err
		}
	}
}

func kitexWriteBinaryStruct(buf []byte, w thrift.NocopyWriter, id int16, v []byte) int {
	off := thrift.Binary.WriteFieldBegin(buf, thrift.STRING, id)
	off += thrift.Binary.WriteBinaryNocopy(buf[off:], w, v)
	return off + thrift.Binary.WriteFieldStop(buf[off:])
}

func kitexBinaryStructLength(v []byte) int {
	return thrift.Binary.FieldBeginLength() + thrift.Binary.BinaryLengthNocopy(v) + thrift.Binary.FieldStopLength()
}

// kitexEchoHandler is the generated-style method handler.
type kitexEchoHandler interface {
	Echo(ctx context.Context, payload []byte) ([]byte, error)
}

type kitexEcho struct{}

func (*kitexEcho) Echo(_ context.Context, payload []byte) ([]byte, error) { return payload, nil }

func kitexServiceInfo() *serviceinfo.ServiceInfo {
	return &serviceinfo.ServiceInfo{
		ServiceName: "Echo",
		HandlerType: (*kitexEchoHandler)(nil),
		Methods: map[string]serviceinfo.MethodInfo{
			kitexMethod: serviceinfo.NewMethodInfo(
				func(ctx context.Context, handler, arg, result any) error {
					out, err := handler.(kitexEchoHandler).Echo(ctx, arg.(*kitexArgs).Payload)
					if err != nil {
						return err
					}
					result.(*kitexResult).Success = out
					return nil
				},
				func() any { return &kitexArgs{} },
				func() any { return &kitexResult{} },
				false),
		},
		PayloadCodec: serviceinfo.Thrift,
		Extra:        map[string]any{},
	}
}

type kitexRunner struct {
	srv  server.Server
	addr string
	cli  client.Client
	done chan error
}

func startKitex(ctx context.Context) (Runner, error) {
	klog.SetLevel(klog.LevelError) // no start-up chatter on stdout
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // Kitex binds the address itself
	srv := server.NewServer(server.WithServiceAddr(addr), server.WithMuxTransport(),
		server.WithMetaHandler(transmeta.ServerTTHeaderHandler), server.WithExitWaitTime(10*time.Millisecond))
	if err := srv.RegisterService(kitexServiceInfo(), &kitexEcho{}); err != nil {
		return nil, err
	}
	r := &kitexRunner{srv: srv, addr: addr.String(), done: make(chan error, 1)}
	go func() { r.done <- srv.Run() }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			srv.Stop()
			return nil, errors.New("kitex: server did not start listening")
		}
	}
	if r.cli, err = r.newClient(); err != nil {
		srv.Stop()
		return nil, err
	}
	return r, nil
}

func (r *kitexRunner) newClient() (client.Client, error) {
	return client.NewClient(kitexServiceInfo(), client.WithDestService("Echo"), client.WithHostPorts(r.addr), client.WithMuxConnection(1),
		client.WithMetaHandler(transmeta.ClientTTHeaderHandler), client.WithRPCTimeout(30*time.Second))
}

func kitexCall(ctx context.Context, cli client.Client, payload []byte) ([]byte, error) {
	var res kitexResult
	if err := cli.Call(ctx, kitexMethod, &kitexArgs{Payload: payload}, &res); err != nil {
		return nil, err
	}
	return res.Success, nil
}

func (r *kitexRunner) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return kitexCall(ctx, r.cli, payload)
}

// Dial implements Dialer: a new client, with its own mux connection.
func (r *kitexRunner) Dial(context.Context) (Runner, error) {
	c, err := r.newClient()
	if err != nil {
		return nil, err
	}
	return kitexConn{c}, nil
}

func (r *kitexRunner) Close() error {
	if c, ok := r.cli.(interface{ Close() error }); ok {
		c.Close()
	}
	err := r.srv.Stop()
	<-r.done
	return err
}

type kitexConn struct{ c client.Client }

func (c kitexConn) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return kitexCall(ctx, c.c, payload)
}

func (c kitexConn) Close() error {
	if cl, ok := c.c.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}
