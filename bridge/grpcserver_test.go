package bridge_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
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

// Protocol tests of the native gRPC server, with x/net/http2's Framer as
// a raw client over a real socket.

// startGRPC serves the route guide and the Greeter natively.
func startGRPC(t testing.TB, cfg bridge.Config, gcfg bridge.GRPCConfig) string {
	t.Helper()
	_, addr := serveGRPC(t, cfg, gcfg)
	return addr
}

// serveGRPC is startGRPC with the Arbor server's options, returning the
// gRPC server too.
func serveGRPC(t testing.TB, cfg bridge.Config, gcfg bridge.GRPCConfig, opts ...arbor.ServerOption) (*bridge.GRPCServer, string) {
	t.Helper()
	srv := arbor.NewServer(opts...)
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	if err := greeter.Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := bridge.NewGRPCServer(bridge.New(srv, cfg), gcfg)
	go gs.Serve(l)
	t.Cleanup(func() {
		gs.Close()
		srv.Close()
	})
	return gs, l.Addr().String()
}

// raw is a client connection speaking frames.
type raw struct {
	t   testing.TB
	nc  net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

// dialRaw connects and sends the preface and settings; it does not read.
func dialRaw(t testing.TB, addr string, settings ...http2.Setting) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	r := &raw{t: t, nc: nc}
	r.fr = http2.NewFramer(nc, nc)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hb)
	if _, err := nc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return r
}

// handshake dials and reads the server's settings, window update and ack.
func handshake(t testing.TB, addr string, settings ...http2.Setting) (*raw, map[http2.SettingID]uint32) {
	r := dialRaw(t, addr, settings...)
	got := map[http2.SettingID]uint32{}
	sawAck := false
	for len(got) == 0 || !sawAck {
		switch f := r.read().(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				sawAck = true
				continue
			}
			f.ForeachSetting(func(s http2.Setting) error { got[s.ID] = s.Val; return nil })
			r.fr.WriteSettingsAck()
		case *http2.WindowUpdateFrame:
		default:
			t.Fatalf("handshake: unexpected %v", f.Header())
		}
	}
	return r, got
}

func (r *raw) read() http2.Frame {
	r.t.Helper()
	f, err := r.fr.ReadFrame()
	if err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

// headers sends a gRPC request's HEADERS for path.
func (r *raw) headers(id uint32, path string, end bool, extra ...string) {
	r.t.Helper()
	r.hb.Reset()
	fields := append([]string{":method", "POST", ":scheme", "http", ":path", path, ":authority", "x", "content-type", "application/grpc", "te", "trailers"}, extra...)
	for i := 0; i < len(fields); i += 2 {
		r.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hb.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// message sends one length-prefixed message.
func (r *raw) message(id uint32, m proto.Message, end bool) {
	r.t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.fr.WriteData(id, end, grpcMessage(b)); err != nil {
		r.t.Fatal(err)
	}
}

func grpcMessage(b []byte) []byte {
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

// response is what a stream got back.
type response struct {
	status   string // :status
	data     []byte
	trailers map[string]string
	rst      http2.ErrCode
	gotRST   bool
}

// until reads frames of stream id until its END_STREAM (or RST_STREAM),
// answering PINGs and ignoring other streams' frames.
func (r *raw) until(id uint32) response {
	r.t.Helper()
	var res response
	for {
		switch f := r.read().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			if res.status == "" {
				res.status = f.PseudoValue("status")
			}
			if res.trailers == nil && (f.StreamEnded() || len(res.data) > 0) {
				res.trailers = map[string]string{}
			}
			for _, hf := range f.RegularFields() {
				if res.trailers != nil {
					res.trailers[hf.Name] = hf.Value
				}
			}
			if f.StreamEnded() {
				return res
			}
		case *http2.DataFrame:
			if f.StreamID == id {
				res.data = append(res.data, f.Data()...)
				if f.StreamEnded() {
					return res
				}
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				res.gotRST, res.rst = true, f.ErrCode
				return res
			}
		case *http2.GoAwayFrame:
			r.t.Fatalf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
		}
	}
}

// goAway reads until GOAWAY and returns its code, and that the server
// then closes the connection.
// sync returns once the server has answered a PING, so has read what was
// sent before it.
func (r *raw) sync() {
	r.fr.WritePing(false, [8]byte{'s', 'y', 'n', 'c'})
	for {
		if p, ok := r.read().(*http2.PingFrame); ok && p.IsAck() && p.Data == [8]byte{'s', 'y', 'n', 'c'} {
			return
		}
	}
}

func (r *raw) goAway() http2.ErrCode {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("no GOAWAY before %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			code := g.ErrCode
			// Closed: EOF, or a reset when the server left bytes unread.
			var ne net.Error
			if _, err := io.Copy(io.Discard, r.nc); errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatalf("after GOAWAY the connection stayed open: %v", err)
			}
			return code
		}
	}
}

func TestGRPCHandshakeAndPing(t *testing.T) {
	addr := startGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxConcurrentStreams: 7, StreamWindow: 100000, MaxHeaderListBytes: 5000})
	r, got := handshake(t, addr)
	if got[http2.SettingMaxConcurrentStreams] != 7 || got[http2.SettingInitialWindowSize] != 100000 || got[http2.SettingMaxHeaderListSize] != 5000 {
		t.Fatalf("settings %v", got)
	}
	r.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	for {
		if p, ok := r.read().(*http2.PingFrame); ok {
			if !p.IsAck() || p.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
				t.Fatalf("PING answer %v", p)
			}
			break
		}
	}
}

func TestGRPCRawUnary(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{}))
	for _, id := range []uint32{1, 3} {
		r.headers(id, pb.RouteGuideGetFeatureProcedure, false, "x-a", "1")
		r.message(id, patriots, true)
		res := r.until(id)
		if res.status != "200" || res.trailers["grpc-status"] != "0" {
			t.Fatalf("stream %d: %+v", id, res)
		}
		var f pb.Feature
		if len(res.data) < 5 || proto.Unmarshal(res.data[5:], &f) != nil || f.GetName() != patriotsName {
			t.Fatalf("stream %d: data %x", id, res.data)
		}
	}
	// Unknown method, then a JSON request and a wrong content-type: each
	// refused on its stream, trailers-only, and RST NO_ERROR (the
	// client had not finished).
	r.headers(5, "/no.Such/Method", false)
	res := r.until(5)
	if res.status != "200" || res.trailers["grpc-status"] != "12" || !strings.Contains(res.trailers["grpc-message"], "/no.Such/Method") {
		t.Fatalf("unknown method: %+v", res)
	}
	r.hb.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", pb.RouteGuideGetFeatureProcedure}, {":authority", "x"}, {"content-type", "text/plain"}} {
		r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: r.hb.Bytes(), EndStream: true, EndHeaders: true})
	if res := r.until(7); res.status != "415" {
		t.Fatalf("text/plain: %+v", res)
	}
	// A compressed message is refused clearly.
	r.headers(9, pb.RouteGuideGetFeatureProcedure, false, "grpc-encoding", "gzip")
	r.fr.WriteData(9, true, []byte{1, 0, 0, 0, 1, 0})
	if res := r.until(9); res.trailers["grpc-status"] != "12" || !strings.Contains(res.trailers["grpc-message"], "compress") {
		t.Fatalf("compressed: %+v", res)
	}
}

// A client's SETTINGS_HEADER_TABLE_SIZE of 0: the server's blocks open
// with the table size update and index nothing (a decoder of table size
// 0 reads them all).
func TestGRPCHeaderTableSizeZero(t *testing.T) {
	r := dialRaw(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{}), http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	r.fr.ReadMetaHeaders = hpack.NewDecoder(0, nil)
	r.fr.WriteSettingsAck()
	for i, id := range []uint32{1, 3, 5, 7} {
		if i%2 == 0 {
			r.headers(id, "/no.Such/Method", true)
			if res := r.until(id); res.trailers["grpc-status"] != "12" {
				t.Fatalf("stream %d: %+v", id, res)
			}
			continue
		}
		r.headers(id, pb.RouteGuideGetFeatureProcedure, false)
		r.message(id, patriots, true)
		if res := r.until(id); res.status != "200" || res.trailers["grpc-status"] != "0" {
			t.Fatalf("stream %d: %+v", id, res)
		}
	}
}

// A message over the limit: ResourceExhausted on its stream before the
// server reads (or allocates) the rest.
func TestGRPCRawMessageLimit(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{MaxMessageBytes: 1000}, bridge.GRPCConfig{}))
	r.headers(1, pb.RouteGuideGetFeatureProcedure, false)
	r.fr.WriteData(1, false, []byte{0, 0xff, 0xff, 0xff, 0xff})
	res := r.until(1)
	if res.trailers["grpc-status"] != "8" || !strings.Contains(res.trailers["grpc-message"], "4294967295 bytes exceeds the limit of 1000") {
		t.Fatalf("%+v", res)
	}
}

// Header lists beyond the limit get ResourceExhausted (one field longer
// than the whole limit is a COMPRESSION_ERROR: x/net's framer's rule).
func TestGRPCRawHeaderLimit(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxHeaderListBytes: 1024}))
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("x-many-%d", i), strings.Repeat("b", 100))
	}
	r.headers(1, pb.RouteGuideGetFeatureProcedure, true, many...)
	res := r.until(1)
	if res.trailers["grpc-status"] != "8" || !strings.Contains(res.trailers["grpc-message"], "1024") {
		t.Fatalf("%+v", res)
	}
	// The connection goes on.
	r.headers(3, pb.RouteGuideGetFeatureProcedure, false)
	r.message(3, patriots, true)
	if res := r.until(3); res.trailers["grpc-status"] != "0" {
		t.Fatalf("after: %+v", res)
	}
}

// Protocol errors end the connection with GOAWAY and the right code.
func TestGRPCBadFrames(t *testing.T) {
	addr := startGRPC(t, bridge.Config{}, bridge.GRPCConfig{})
	cases := []struct {
		name string
		send func(r *raw)
		want http2.ErrCode
	}{
		{"DATA on an idle stream", func(r *raw) { r.fr.WriteData(9, true, []byte{0, 0, 0, 0, 0}) }, http2.ErrCodeProtocol},
		{"HEADERS on an even stream", func(r *raw) { r.headers(2, pb.RouteGuideGetFeatureProcedure, true) }, http2.ErrCodeProtocol},
		{"a frame over MAX_FRAME_SIZE", func(r *raw) {
			r.fr.WriteData(1, false, make([]byte, 20000))
		}, http2.ErrCodeFrameSize},
		{"the connection window overflowed", func(r *raw) { r.fr.WriteWindowUpdate(0, 1<<31-1) }, http2.ErrCodeFlowControl},
		{"CONTINUATION without HEADERS", func(r *raw) { r.fr.WriteContinuation(1, true, []byte{0x82}) }, http2.ErrCodeProtocol},
		{"SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1", func(r *raw) {
			r.fr.AllowIllegalWrites = true
			r.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
		}, http2.ErrCodeFlowControl},
		{"a broken HPACK block", func(r *raw) {
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EndHeaders: true})
		}, http2.ErrCodeCompression},
		{"HEADERS on a closed stream", func(r *raw) {
			r.headers(3, pb.RouteGuideGetFeatureProcedure, false)
			r.message(3, patriots, true)
			r.until(3)
			r.headers(3, pb.RouteGuideGetFeatureProcedure, true) // trailers after the end: ignored
			r.headers(1, pb.RouteGuideGetFeatureProcedure, false)
		}, http2.ErrCodeStreamClosed},
		{"PUSH_PROMISE from a client", func(r *raw) {
			r.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: []byte{0x82}, EndHeaders: true})
		}, http2.ErrCodeProtocol},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := handshake(t, addr)
			c.send(r)
			if got := r.goAway(); got != c.want {
				t.Fatalf("GOAWAY %v, want %v", got, c.want)
			}
		})
	}
	// A bad preface: GOAWAY PROTOCOL_ERROR, too.
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	r := &raw{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	if got := r.goAway(); got != http2.ErrCodeProtocol {
		t.Fatalf("bad preface: GOAWAY %v", got)
	}
}

// A client that grants little window gets that much and no more; its
// WINDOW_UPDATEs let the rest through.
func TestGRPCFlowControlStall(t *testing.T) {
	addr := startGRPC(t, bridge.Config{}, bridge.GRPCConfig{})
	r, _ := handshake(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1000})
	r.headers(1, greeter.GreeterSayHellosProcedure, false)
	r.message(1, &greeter.HellosRequest{Name: strings.Repeat("w", 100), Count: 100}, true)
	got := 0
	r.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		f, err := r.fr.ReadFrame()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			got += len(f.Data())
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				t.Fatal("the call ended past the client's window")
			}
		}
	}
	if got != 1000 {
		t.Fatalf("%d bytes of DATA within a window of 1000", got)
	}
	// The connection's window (64 KiB) is ample; grant the stream more.
	r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r.fr = http2.NewFramer(r.nc, r.nc) // the old one's read timed out
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.WriteWindowUpdate(1, 60000)
	res := r.until(1)
	if res.trailers["grpc-status"] != "0" || got+len(res.data) < 100*100 {
		t.Fatalf("after the update: %d+%d bytes, %+v", got, len(res.data), res.trailers)
	}
}

// A stream's DATA beyond the window the server gave it is a stream
// error. The handler (RouteChat, whose second note at a place is
// answered) is stuck sending into the client's window of 0, so the
// messages wait and their bytes are not credited back.
func TestGRPCInboundFlowControl(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{StreamWindow: 65535}),
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	r.headers(1, pb.RouteGuideRouteChatProcedure, false)
	chunk := make([]byte, 16384) // empty messages: notes at no place
	for range 5 {
		r.fr.WriteData(1, false, chunk)
	}
	res := r.until(1)
	if !res.gotRST || res.rst != http2.ErrCodeFlowControl {
		t.Fatalf("%+v", res)
	}
}

// Streams beyond MaxConcurrentStreams are refused; the others go on.
func TestGRPCMaxStreams(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxConcurrentStreams: 2}))
	r.headers(1, pb.RouteGuideRecordRouteProcedure, false)
	r.headers(3, pb.RouteGuideRecordRouteProcedure, false)
	r.headers(5, pb.RouteGuideRecordRouteProcedure, false)
	if res := r.until(5); !res.gotRST || res.rst != http2.ErrCodeRefusedStream {
		t.Fatalf("the third stream: %+v", res)
	}
	r.message(1, patriots, true)
	if res := r.until(1); res.trailers["grpc-status"] != "0" {
		t.Fatalf("stream 1: %+v", res)
	}
	// Stream 1 is done: a new one fits.
	r.headers(7, pb.RouteGuideGetFeatureProcedure, false)
	r.message(7, patriots, true)
	if res := r.until(7); res.trailers["grpc-status"] != "0" {
		t.Fatalf("stream 7: %+v", res)
	}
	r.fr.WriteRSTStream(3, http2.ErrCodeCancel)
}

// A client that sends and never reads is stopped by flow control and the
// bounded write queue: the server's memory stays put while it pushes.
func TestGRPCClientThatNeverReads(t *testing.T) {
	addr := startGRPC(t, bridge.Config{}, bridge.GRPCConfig{})
	r := dialRaw(t, addr)
	r.fr.WriteSettingsAck()
	// PINGs a thousand to a write, each answered with as many bytes.
	var batch bytes.Buffer
	bf := http2.NewFramer(&batch, nil)
	for i := range 1000 {
		var ping [8]byte
		binary.BigEndian.PutUint64(ping[:], uint64(i))
		bf.WritePing(false, ping)
	}
	start := time.Now()
	deadline := start.Add(8 * time.Second)
	var err error
	sent := 0
	for time.Now().Before(deadline) {
		r.nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, werr := r.nc.Write(batch.Bytes())
		sent += n
		if err = werr; err != nil {
			break
		}
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a PING flood from a client that reads nothing was taken for 8s (err %v): the server does not push back", err)
	}
	t.Logf("the server stopped reading after %v and %d bytes", time.Since(start), sent)
	// It only paused: once the client reads, every whole PING is answered.
	r.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for acks := 0; acks < sent/17; {
		f, err := r.fr.ReadFrame()
		if err != nil {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d PINGs answered of %d: %v\n%s", acks, sent/17, err, buf)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			acks++
		}
	}
}

// Shutdown sends GOAWAY naming the last stream taken, refuses newer ones,
// lets the one in flight finish, then closes the connection.
func TestGRPCShutdownGoAway(t *testing.T) {
	srv := arbor.NewServer()
	defer srv.Close()
	if err := server.New(nil).Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := bridge.NewGRPCServer(bridge.New(srv, bridge.Config{}), bridge.GRPCConfig{})
	served := make(chan error, 1)
	go func() { served <- gs.Serve(l) }()
	r, _ := handshake(t, l.Addr().String())
	r.headers(1, pb.RouteGuideRecordRouteProcedure, false)
	r.message(1, patriots, false)
	r.sync() // the server has taken stream 1
	shut := make(chan error, 1)
	go func() { shut <- gs.Shutdown(testContext(t)) }()
	for {
		if g, ok := r.read().(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
				t.Fatalf("GOAWAY %v, last stream %d", g.ErrCode, g.LastStreamID)
			}
			break
		}
	}
	r.headers(3, pb.RouteGuideGetFeatureProcedure, true)
	if res := r.until(3); !res.gotRST || res.rst != http2.ErrCodeRefusedStream {
		t.Fatalf("a stream after GOAWAY: %+v", res)
	}
	r.fr.WriteData(1, true, nil)
	if res := r.until(1); res.trailers["grpc-status"] != "0" {
		t.Fatalf("the stream in flight: %+v", res)
	}
	var ne net.Error
	if _, err := io.Copy(io.Discard, r.nc); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection stayed open after its last stream")
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, bridge.ErrGRPCServerClosed) {
		t.Fatal(err)
	}
}

// A malformed header (an upper-case name) is a stream error: RST_STREAM
// PROTOCOL_ERROR on its stream, and the connection serves on.
func TestGRPCStreamError(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{}))
	r.headers(1, pb.RouteGuideGetFeatureProcedure, true, "X-Upper", "v")
	if res := r.until(1); !res.gotRST || res.rst != http2.ErrCodeProtocol {
		t.Fatalf("%+v", res)
	}
	r.headers(3, pb.RouteGuideGetFeatureProcedure, false)
	r.message(3, patriots, true)
	if res := r.until(3); res.trailers["grpc-status"] != "0" {
		t.Fatalf("after: %+v", res)
	}
}

// The request bytes all connections hold are bounded by MaxMemory: a
// stream whose message would go over it is refused with
// RESOURCE_EXHAUSTED naming the limit, and what a stream held is given
// back when it ends, so the server serves again.
func TestGRPCMemoryBudget(t *testing.T) {
	addr := startGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxMemory: 64 << 10})
	a, _ := handshake(t, addr)
	b, _ := handshake(t, addr)
	chunk := make([]byte, 16000)
	big := func(r *raw, id uint32, chunks int) {
		r.headers(id, pb.RouteGuideGetFeatureProcedure, false)
		if err := r.fr.WriteData(id, false, []byte{0, 0, 1, 0x86, 0xa0}); err != nil { // a 100,000-byte message
			t.Fatal(err)
		}
		for range chunks {
			if err := r.fr.WriteData(id, false, chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	big(a, 1, 3) // 48 KB held, the message unfinished
	// Let a's bytes arrive first: a small call on a answers after them.
	a.headers(3, pb.RouteGuideGetFeatureProcedure, false)
	a.message(3, patriots, true)
	if res := a.until(3); res.trailers["grpc-status"] != "0" {
		t.Fatalf("a small call beside the large message: %+v", res)
	}
	big(b, 1, 2) // 32 KB more: over 64 KiB across the two connections
	res := b.until(1)
	if res.trailers["grpc-status"] != "8" || !strings.Contains(res.trailers["grpc-message"], "MaxMemory") {
		t.Fatalf("the stream over the server's budget: %+v", res)
	}
	// A 40 KB message does not fit beside a's 48 KB either...
	send40 := func(id uint32) response {
		b.headers(id, pb.RouteGuideGetFeatureProcedure, false)
		if err := b.fr.WriteData(id, false, []byte{0, 0, 0, 0x9c, 0x40}); err != nil {
			t.Fatal(err)
		}
		for off := 0; off < 40000; off += 10000 {
			if err := b.fr.WriteData(id, off+10000 == 40000, make([]byte, 10000)); err != nil {
				t.Fatal(err)
			}
		}
		return b.until(id)
	}
	if res := send40(3); res.trailers["grpc-status"] != "8" {
		t.Fatalf("40 KB beside 48 KB held, under a 64 KiB budget: %+v", res)
	}
	// ...until a's stream ends and gives its 48 KB back: then it is
	// taken (and refused by the handler, as 40,000 zero bytes are no
	// Point; not by the budget).
	if err := a.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	for i := uint32(0); ; i++ {
		res := send40(5 + 2*i)
		if res.trailers["grpc-status"] != "8" {
			break
		}
		if i == 50 {
			t.Fatalf("the budget never came back after the stream holding it was reset: %+v", res)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Connections beyond MaxConnections are closed as soon as accepted; the
// ones served go on, and a place that frees is taken again.
func TestGRPCMaxConnections(t *testing.T) {
	addr := startGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxConnections: 2})
	a, _ := handshake(t, addr)
	b, _ := handshake(t, addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a third connection over MaxConnections 2 was served (%d bytes read)", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a third connection over MaxConnections 2 was left open, not closed")
	}
	for _, r := range []*raw{a, b} {
		r.headers(1, pb.RouteGuideGetFeatureProcedure, false)
		r.message(1, patriots, true)
		if res := r.until(1); res.trailers["grpc-status"] != "0" {
			t.Fatalf("a served connection: %+v", res)
		}
	}
	a.nc.Close()
	for i := 0; ; i++ {
		r, _ := handshakeMaybe(addr)
		if r != nil {
			r.Close()
			break
		}
		if i == 100 {
			t.Fatal("no connection served after one of the two closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// handshakeMaybe dials and reads the server's SETTINGS, or returns nil
// when the server closed the connection instead.
func handshakeMaybe(addr string) (net.Conn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	nc.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(nc, nc)
	fr.WriteSettings()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fr.ReadFrame(); err != nil {
		nc.Close()
		return nil, err
	}
	return nc, nil
}

// A client that drops its connection in the middle of a client stream
// has not ended the stream: the handler's Recv fails, it does not see
// the io.EOF of a client that half-closed, and so does not finish (and
// commit) a request that was cut short.
func TestGRPCConnectionLossIsNotEndOfStream(t *testing.T) {
	ended := make(chan error, 1)
	ic := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			resp, err := next(ctx, req)
			if req.ID == pb.RouteGuideRecordRouteProcedure {
				ended <- err
			}
			return resp, err
		}
	}
	_, addr := serveGRPC(t, bridge.Config{}, bridge.GRPCConfig{}, arbor.WithInterceptors(ic))
	r, _ := handshake(t, addr)
	r.headers(1, pb.RouteGuideRecordRouteProcedure, false)
	r.message(1, patriots, false)
	r.sync() // the server has read the point
	// Gone, with a FIN (as a client that exits having read everything).
	r.nc.(*net.TCPConn).CloseWrite()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("RecordRoute succeeded on a connection the client dropped mid-stream: Recv returned io.EOF")
		}
		t.Logf("the handler ended with %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not end after the connection closed")
	}
}

// Shutdown called twice at once (a signal handler and a deferred call):
// both return once the connections have drained, not only the last.
func TestGRPCConcurrentShutdown(t *testing.T) {
	gs, addr := serveGRPC(t, bridge.Config{}, bridge.GRPCConfig{})
	r, _ := handshake(t, addr)
	r.headers(1, pb.RouteGuideRecordRouteProcedure, false)
	r.sync() // the server has taken stream 1
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	shut := make(chan error, 2)
	go func() { shut <- gs.Shutdown(ctx) }()
	for {
		if _, ok := r.read().(*http2.GoAwayFrame); ok {
			break
		}
	}
	go func() { shut <- gs.Shutdown(ctx) }()
	time.Sleep(100 * time.Millisecond) // the second Shutdown waits too
	r.fr.WriteData(1, true, nil)
	if res := r.until(1); res.trailers["grpc-status"] != "0" {
		t.Fatalf("the stream in flight: %+v", res)
	}
	for i := range 2 {
		if err := <-shut; err != nil {
			t.Fatalf("Shutdown %d of 2 after the drain: %v", i+1, err)
		}
	}
}

// A call that ends (here at its grpc-timeout) while a message of its is
// only partly out, held back by the client's window, cannot send
// trailers: they would close the stream inside the message, which a
// gRPC client reads as a truncated message (grpc-go: Internal,
// "unexpected EOF"), not as the call's status. It is reset instead
// (CANCEL, as gRPC servers do at a deadline).
func TestGRPCNoTrailersInsideAMessage(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{}),
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 3})
	r.headers(1, greeter.GreeterSayHellosProcedure, false, "grpc-timeout", "200m")
	r.message(1, &greeter.HellosRequest{Name: "w", Count: 2}, true)
	res := r.until(1)
	if len(res.data) != 3 {
		t.Fatalf("%d bytes of DATA within a window of 3", len(res.data))
	}
	if !res.gotRST || res.rst != http2.ErrCodeCancel {
		t.Fatalf("the call ended inside a message with %+v, not RST_STREAM CANCEL", res)
	}
}

// The request bytes of a stream that never started its handler (a
// unary call whose message had not ended) go back to MaxMemory when its
// connection dies: a client that sends large messages and hangs up does
// not use up the server's budget for good.
func TestGRPCMemoryBudgetAfterConnectionLoss(t *testing.T) {
	gs, addr := serveGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxMemory: 1 << 20})
	r, _ := handshake(t, addr)
	r.headers(1, pb.RouteGuideGetFeatureProcedure, false)
	r.fr.WriteData(1, false, []byte{0, 0, 1, 0x86, 0xa0}) // a 100,000-byte message
	r.fr.WriteData(1, false, make([]byte, 16000))
	r.headers(3, pb.RouteGuideGetFeatureProcedure, false)
	r.message(3, patriots, false) // whole, but the stream not ended
	r.sync()                      // the server has read it all
	if n := gs.MemoryInUse(); n < 16000 {
		t.Fatalf("MemoryInUse %d while a stream holds 16,000 bytes", n)
	}
	r.nc.Close()
	for i := 0; gs.MemoryInUse() != 0; i++ {
		if i == 100 {
			t.Fatalf("MemoryInUse %d after the only connection closed: its streams' bytes are lost to the budget", gs.MemoryInUse())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A stream window asked for below HTTP/2's initial 65,535 bytes gets
// 65,535, not the 256 KiB default: a user asking for a small window is
// not given a larger one.
func TestGRPCSmallStreamWindowClamped(t *testing.T) {
	_, got := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{StreamWindow: 1000}))
	if w := got[http2.SettingInitialWindowSize]; w != 65535 {
		t.Fatalf("initial window %d advertised for a StreamWindow of 1000, want 65535", w)
	}
}

// A unary call whose grpc-timeout passes before its request has ended is
// answered DEADLINE_EXCEEDED then, as gRPC servers do, and stops counting
// against MaxConcurrentStreams: a client that opens calls and never
// finishes them does not hold the server's streams past their deadlines.
func TestGRPCDeadlineBeforeRequestEnds(t *testing.T) {
	r, _ := handshake(t, startGRPC(t, bridge.Config{}, bridge.GRPCConfig{MaxConcurrentStreams: 1}))
	r.headers(1, pb.RouteGuideGetFeatureProcedure, false, "grpc-timeout", "100m")
	// Half a message, and no END_STREAM.
	r.fr.WriteData(1, false, grpcMessage(make([]byte, 10))[:8])
	res := r.until(1)
	if res.trailers["grpc-status"] != "4" {
		t.Fatalf("stream 1: %+v; want grpc-status 4 (DEADLINE_EXCEEDED)", res)
	}
	// Its slot is free: the next call is served.
	r.headers(3, pb.RouteGuideGetFeatureProcedure, false)
	r.message(3, patriots, true)
	if res := r.until(3); res.trailers["grpc-status"] != "0" {
		t.Fatalf("stream 3: %+v", res)
	}
	// The rest of stream 1's request, late, changes nothing.
	r.fr.WriteData(1, true, grpcMessage(make([]byte, 10))[8:])
	r.sync()
}

// slowGreeter answers after its call's deadline has passed, ignoring it.
type slowGreeter struct {
	greeter.UnimplementedGreeterHandler
}

func (slowGreeter) SayHello(_ context.Context, req *greeter.HelloRequest) (*greeter.HelloReply, error) {
	time.Sleep(150 * time.Millisecond)
	return &greeter.HelloReply{Message: "late"}, nil
}

// A unary handler that returns its result after the call's deadline has
// passed still answers the call: DEADLINE_EXCEEDED, not silence (the
// stream closed with nothing sent, the client left waiting).
func TestGRPCResultAfterDeadline(t *testing.T) {
	srv := arbor.NewServer()
	if err := greeter.RegisterGreeterHandler(srv, slowGreeter{}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := bridge.NewGRPCServer(bridge.New(srv, bridge.Config{}), bridge.GRPCConfig{})
	go gs.Serve(l)
	t.Cleanup(func() {
		gs.Close()
		srv.Close()
	})
	r, _ := handshake(t, l.Addr().String())
	r.headers(1, greeter.GreeterSayHelloProcedure, false, "grpc-timeout", "50m")
	r.message(1, &greeter.HelloRequest{Name: "x"}, true)
	r.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if res := r.until(1); res.trailers["grpc-status"] != "4" {
		t.Fatalf("stream 1: %+v; want grpc-status 4 (DEADLINE_EXCEEDED)", res)
	}
}
