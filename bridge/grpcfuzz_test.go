package bridge_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/bridge"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
	"github.com/arbor-rpc/arbor/internal/demo/greeter"
)

// pipeListener hands the native server the ends of net.Pipes.
type pipeListener struct {
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "pipe"} }

// fuzzSeeds are client byte streams after the preface: a good call of
// each kind, and broken ones.
func fuzzSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	frames := func(write func(fr *http2.Framer, enc func(fields ...string) []byte)) []byte {
		var b, hb bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.AllowIllegalWrites = true
		he := hpack.NewEncoder(&hb)
		enc := func(fields ...string) []byte {
			hb.Reset()
			for i := 0; i+1 < len(fields); i += 2 {
				he.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
			}
			return append([]byte(nil), hb.Bytes()...)
		}
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		write(fr, enc)
		return b.Bytes()
	}
	req := func(path string) []string {
		return []string{":method", "POST", ":scheme", "http", ":path", path, ":authority", "x", "content-type", "application/grpc", "grpc-timeout", "1S", "x-md", "v"}
	}
	point, _ := proto.Marshal(patriots)
	seeds = append(seeds, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(req(pb.RouteGuideGetFeatureProcedure)...), EndHeaders: true})
		fr.WriteData(1, true, grpcMessage(point))
		fr.WritePing(false, [8]byte{1})
		fr.WriteWindowUpdate(0, 1000)
	}))
	seeds = append(seeds, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		block := enc(req(pb.RouteGuideRecordRouteProcedure)...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block[:4]})
		fr.WriteContinuation(3, true, block[4:])
		fr.WriteData(3, false, grpcMessage(point)[:3])
		fr.WriteData(3, false, grpcMessage(point)[3:])
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
	}))
	seeds = append(seeds, frames(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(req(greeter.GreeterSayHellosProcedure)...), EndHeaders: true})
		fr.WriteData(1, true, []byte{0, 0x7f, 0xff, 0xff, 0xff})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: enc(req(pb.RouteGuideRouteChatProcedure)...), EndHeaders: true})
		fr.WriteData(5, false, []byte{1, 0, 0, 0, 0})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: enc(req("/x.Y/Z")...), EndHeaders: true, EndStream: true})
	}))
	seeds = append(seeds, frames(func(fr *http2.Framer, _ func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x3f, 0xff, 0xff, 0xff, 0x7f}, EndHeaders: true})
	}))
	seeds = append(seeds, frames(func(fr *http2.Framer, _ func(...string) []byte) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 14}, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
		fr.WriteWindowUpdate(1, 5)
		fr.WriteData(0, false, nil)
	}))
	seeds = append(seeds, []byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 1})
	return seeds
}

// FuzzGRPCConn feeds a native server connection raw bytes after the
// preface: whatever they are, the server neither panics nor allocates
// beyond a bound proportional to them, and closes or serves.
func FuzzGRPCConn(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	srv := arbor.NewServer()
	defer srv.Close()
	if err := server.New(nil).Register(srv); err != nil {
		f.Fatal(err)
	}
	if err := greeter.Register(srv); err != nil {
		f.Fatal(err)
	}
	pl := newPipeListener()
	gs := bridge.NewGRPCServer(bridge.New(srv, bridge.Config{}), bridge.GRPCConfig{HandshakeTimeout: time.Second})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(pl) }()
	defer func() {
		gs.Close()
		<-served
	}()
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cli, sc := net.Pipe()
		pl.ch <- sc
		read := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, cli)
			read <- err
		}()
		cli.SetDeadline(time.Now().Add(5 * time.Second))
		cli.Write(append([]byte(http2.ClientPreface), data...))
		// Give the server a moment to answer what it read, then hang up.
		time.Sleep(time.Millisecond)
		cli.Close()
		if err := <-read; err != nil && !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("reading the server: %v", err)
		}
		runtime.ReadMemStats(&after)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20+uint64(64*len(data)) {
			t.Fatalf("%d bytes of input made the server allocate %d bytes", len(data), grew)
		}
	})
}
