package conn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoHandler answers "echo" with its args, "block" by waiting for its
// context, "panic" by panicking, and "deadline" with its deadline.
type testHandler struct {
	started chan struct{}
	ended   chan error
}

func (h *testHandler) ServeCall(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
	switch string(in.Function) {
	case "echo":
		return append(out, in.Args...), nil
	case "block":
		h.started <- struct{}{}
		<-ctx.Done()
		h.ended <- ctx.Err()
		return nil, ctx.Err()
	case "wait":
		h.started <- struct{}{}
		<-h.ended
		return append(out, "waited"...), nil
	case "panic":
		panic("boom")
	case "deadline":
		dl, ok := ctx.Deadline()
		if !ok {
			return append(out, "none"...), nil
		}
		return append(out, time.Until(dl).Round(time.Second).String()...), nil
	case "md":
		md, _ := ctx.Value(MetadataKey).([]wire.MD)
		for _, kv := range md {
			out = append(out, kv.Key+"="+kv.Value+";"...)
		}
		return out, nil
	}
	return nil, status.Errorf(status.NotFound, "no function %q", in.Function)
}

type pair struct {
	client, server *Conn
	h              *testHandler
}

func newPair(t *testing.T, scfg, ccfg Config) *pair {
	t.Helper()
	h := &testHandler{started: make(chan struct{}, 16), ended: make(chan error, 16)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := connectPair(t, l, func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) }, scfg, ccfg, h)
	return &pair{client: cc, server: sc, h: h}
}

// out describes a plain call.
func out(fn string, md []wire.MD, args []byte) *Outgoing {
	return &Outgoing{Function: fn, Metadata: md, Args: args}
}

func callString(t *testing.T, c *Conn, ctx context.Context, fn string, args string) (string, error) {
	t.Helper()
	r, err := c.Call(ctx, out(fn, nil, []byte(args)))
	if err != nil {
		return "", err
	}
	defer r.Release()
	return string(r.Result()), nil
}

func TestConcurrentCalls(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				msg := strings.Repeat(string(rune('a'+g%26)), g*50+i)
				got, err := callString(t, p.client, context.Background(), "echo", msg)
				if err != nil || got != msg {
					t.Errorf("echo: got %d bytes, %v", len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := p.server.Err(); err != nil {
		t.Fatalf("server closed: %v", err)
	}
}

func TestLargeFrames(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	big := bytes.Repeat([]byte("xyz"), 1<<20) // 3 MiB, above the read buffer
	r, err := p.client.Call(context.Background(), out("echo", nil, big))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Result(), big) {
		t.Fatal("large echo corrupted")
	}
	r.Release()
	_, err = p.client.Call(context.Background(), out("echo", nil, make([]byte, 5<<20)))
	if status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "frame limit") {
		t.Fatalf("oversized call: %v", err)
	}
}

func TestRemoteErrorsAndPanics(t *testing.T) {
	p := newPair(t, Config{Logger: slog.New(slog.DiscardHandler)}, Config{})
	_, err := callString(t, p.client, context.Background(), "nope", "")
	var se *status.Error
	if !errors.As(err, &se) || se.Code != status.NotFound || se.Message != `no function "nope"` {
		t.Fatalf("got %v", err)
	}
	_, err = callString(t, p.client, context.Background(), "panic", "")
	if status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("panic: %v", err)
	}
	if got, err := callString(t, p.client, context.Background(), "echo", "still here"); err != nil || got != "still here" {
		t.Fatalf("after panic: %q %v", got, err)
	}
}

func TestCancelReachesHandler(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := callString(t, p.client, ctx, "block", "")
		errc <- err
	}()
	<-p.h.started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) || status.CodeOf(err) != status.Canceled {
		t.Fatalf("caller got %v", err)
	}
	if err := <-p.h.ended; err != context.Canceled {
		t.Fatalf("handler's context ended with %v, want Canceled", err)
	}
}

func TestDeadlineTravels(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := callString(t, p.client, ctx, "deadline", ""); err != nil || got != "5s" {
		t.Fatalf("deadline seen by handler: %q %v", got, err)
	}
	if got, _ := callString(t, p.client, context.Background(), "deadline", ""); got != "none" {
		t.Fatalf("no deadline: %q", got)
	}
	// An expiring deadline ends the handler's context too.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := callString(t, p.client, ctx, "block", "")
	<-p.h.started
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, status.ErrTimeout) {
		t.Fatalf("caller got %v", err)
	}
	if herr := <-p.h.ended; herr != context.DeadlineExceeded && herr != context.Canceled {
		t.Fatalf("handler's context ended with %v", herr)
	}
}

func TestMetadata(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	r, err := p.client.Call(context.Background(), out("md", []wire.MD{{Key: "a", Value: "1"}, {Key: "auth", Value: "x"}}, nil))
	if err != nil || string(r.Result()) != "a=1;auth=x;" {
		t.Fatalf("metadata: %v", err)
	}
	r.Release()
}

func TestDrain(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	res := make(chan string, 1)
	go func() {
		got, err := callString(t, p.client, context.Background(), "wait", "")
		if err != nil {
			got = err.Error()
		}
		res <- got
	}()
	<-p.h.started
	drained := make(chan error, 1)
	go func() { drained <- p.server.Drain(context.Background(), "server shutting down") }()
	// The client learns of the GOAWAY and refuses new calls as retryable.
	deadline := time.Now().Add(5 * time.Second)
	for p.client.Usable() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	_, err := callString(t, p.client, context.Background(), "echo", "late")
	var se *status.Error
	if !errors.As(err, &se) || se.Code != status.Unavailable || !se.Retryable {
		t.Fatalf("call after GOAWAY: %v", err)
	}
	select {
	case <-drained:
		t.Fatal("drain finished while a call was running")
	default:
	}
	p.h.ended <- nil // let the running call finish
	if got := <-res; got != "waited" {
		t.Fatalf("in-flight call: %q", got)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	<-p.client.Done()
}

func TestBrokenConnectionFailsPendingCalls(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	const n = 8
	errc := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := callString(t, p.client, context.Background(), "block", "")
			errc <- err
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case <-p.h.started:
		case err := <-errc:
			t.Fatalf("call ended before the connection broke: %v", err)
		}
	}
	p.server.NetConn().Close() // the socket dies under the server
	for i := 0; i < n; i++ {
		err := <-errc
		if status.CodeOf(err) != status.Unavailable || !errors.Is(err, status.ErrConnection) {
			t.Fatalf("pending call got %v", err)
		}
	}
	for i := 0; i < n; i++ {
		<-p.h.ended
	}
}

// silentPeer completes the handshake and then never sends another byte.
func silentPeer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Hour}))
		io.Copy(io.Discard, nc) // swallow everything, answer nothing
		nc.Close()
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

func TestKeepAliveDetectsDeadPeer(t *testing.T) {
	nc, err := net.Dial("tcp", silentPeer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Client(nc, Config{KeepAlive: 20 * time.Millisecond, KeepAliveTimeout: 60 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.KeepAlive() != 20*time.Millisecond {
		t.Fatalf("agreed keep-alive %v", c.KeepAlive())
	}
	_, err = c.Call(context.Background(), out("echo", nil, nil)) // would hang forever without keep-alive
	if status.CodeOf(err) != status.Unavailable || !errors.Is(err, status.ErrTimeout) || !strings.Contains(err.Error(), "keep-alive") {
		t.Fatalf("got %v", err)
	}
}

// A peer that proposes a short keep-alive gets its pings at that pace
// (down to minPeerKeepAlive), but the side that proposed a long one does
// not drop it after twice the short interval of silence (a loaded machine
// makes such silences): the silence it tolerates comes from its own
// proposal.
func TestKeepAliveShortPeerProposalDoesNotShortenTimeout(t *testing.T) {
	// A peer asking for 20 ms pings (1 s, the floor, agreed), then silent
	// for 2.2 s (it neither pings nor answers: it only reads).
	nc, sc := rawClientWith(t, Config{Handler: &testHandler{}, KeepAlive: 10 * time.Second}, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: 20 * time.Millisecond})
	if got := sc.KeepAlive(); got != minPeerKeepAlive {
		t.Fatalf("agreed keep-alive %v, want the floor %v", got, minPeerKeepAlive)
	}
	go io.Copy(io.Discard, nc)
	time.Sleep(2*minPeerKeepAlive + 200*time.Millisecond)
	if err := sc.Err(); err != nil {
		t.Fatalf("the server dropped a peer silent for over twice the agreed interval, under twice its own 10s proposal: %v", err)
	}
}

func TestKeepAliveQuietButHealthy(t *testing.T) {
	p := newPair(t, Config{KeepAlive: 10 * time.Millisecond}, Config{KeepAlive: 10 * time.Millisecond, KeepAliveTimeout: 30 * time.Millisecond})
	time.Sleep(150 * time.Millisecond) // many intervals with no calls: pings keep it alive
	if got, err := callString(t, p.client, context.Background(), "echo", "ok"); err != nil || got != "ok" {
		t.Fatalf("after quiet period: %v", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	p := newPair(t, Config{MaxConcurrent: 1}, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := callString(t, p.client, ctx, "block", ""); errc <- err }()
	<-p.h.started
	_, err := callString(t, p.client, context.Background(), "echo", "x")
	if status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "limit 1") {
		t.Fatalf("over the limit: %v", err)
	}
	cancel()
	<-errc
	<-p.h.ended
}

// rawServer starts a Conn server on a fresh listener and returns a raw
// client socket that has completed the handshake, plus the server conn.
func rawClient(t *testing.T, logger *slog.Logger) (net.Conn, *Conn) {
	t.Helper()
	return rawClientWith(t, Config{Handler: &testHandler{}, Logger: logger, MaxFrame: 64 << 10}, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20})
}

// rawClientWith is rawClient with the server's config and the client's
// HELLO given.
func rawClientWith(t *testing.T, scfg Config, hello wire.Hello) (net.Conn, *Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		c, _ := Server(nc, scfg)
		ch <- c
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	nc.Write(wire.AppendHello(nil, hello))
	r := wire.NewReader(nc, 4096, 1<<20)
	if h, _, err := r.Next(); err != nil || h.Type != wire.TypeHello {
		t.Fatalf("no hello: %v", err)
	}
	sc := <-ch
	if sc == nil {
		t.Fatal("server handshake failed")
	}
	t.Cleanup(func() { nc.Close(); sc.Close() })
	return nc, sc
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestBadFramesCloseOnlyThatConnection(t *testing.T) {
	cases := map[string][]byte{
		"garbage":       []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"oversized":     wire.AppendHeader(nil, wire.Header{Length: 1 << 30, Type: wire.TypeCall, ID: 1}),
		"bad call":      wire.AppendFrame(nil, wire.TypeCall, 0, 1, []byte{0, 99}),
		"wrong parity":  wire.AppendFrame(nil, wire.TypeCall, 0, 2, []byte{0, 1, 'f', 0}),
		"second hello":  wire.AppendHello(nil, wire.Hello{Version: 1, MaxFrame: 1 << 20}),
		"unknown reply": wire.AppendFrame(nil, wire.TypeResult, 0, 1001, nil),
		"truncated":     wire.AppendHeader(nil, wire.Header{Length: 100, Type: wire.TypeCall, ID: 1})[:10],
		"non-zero pad":  wire.AppendFrame(nil, wire.TypePad, 0, 0, []byte{0, 0, 1}),
	}
	healthy := newPair(t, Config{}, Config{})
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			var logs logBuf
			nc, sc := rawClient(t, slog.New(slog.NewTextHandler(&logs, nil)))
			nc.Write(frame)
			if name == "truncated" {
				nc.(*net.TCPConn).CloseWrite()
			}
			select {
			case <-sc.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("server did not close the connection")
			}
			if !errors.Is(sc.Err(), status.ErrProtocol) {
				t.Fatalf("closed with %v", sc.Err())
			}
			if !strings.Contains(logs.String(), "protocol error") {
				t.Fatalf("not logged: %q", logs.String())
			}
			if got, err := callString(t, healthy.client, context.Background(), "echo", "fine"); err != nil || got != "fine" {
				t.Fatalf("other connection hurt: %v", err)
			}
		})
	}
}

func TestVersionMismatch(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		_, err = Server(nc, Config{})
		errc <- err
	}()
	nc, _ := net.Dial("tcp", l.Addr().String())
	defer nc.Close()
	nc.Write(wire.AppendHello(nil, wire.Hello{Version: 99, MaxFrame: 1 << 20}))
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "peer speaks 99") {
		t.Fatalf("server: %v", err)
	}
	// The client is told why.
	r := wire.NewReader(nc, 4096, 1<<20)
	r.Next() // HELLO
	h, p, err := r.Next()
	if err != nil || h.Type != wire.TypeGoAway {
		t.Fatalf("want GOAWAY, got %v %v", h.Type, err)
	}
	g, _ := wire.ParseGoAway(p)
	if !strings.Contains(string(g.Message), "version mismatch") {
		t.Fatalf("GOAWAY says %q", g.Message)
	}
}

func BenchmarkCallEcho64(b *testing.B) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	ch := make(chan *Conn, 1)
	go func() {
		nc, _ := l.Accept()
		c, _ := Server(nc, Config{Handler: HandlerFunc(func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
			return append(out, in.Args...), nil
		})})
		ch <- c
	}()
	nc, _ := net.Dial("tcp", l.Addr().String())
	c, err := Client(nc, Config{})
	if err != nil {
		b.Fatal(err)
	}
	s := <-ch
	defer s.Close()
	defer c.Close()
	payload := make([]byte, 64)
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := c.Call(context.Background(), out("echo", nil, payload))
			if err != nil {
				b.Error(err)
				return
			}
			r.Release()
		}
	})
}

func TestTrailers(t *testing.T) {
	cc, _ := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		SetTrailer(ctx, wire.MD{Key: "took", Value: "3ms"})
		if string(in.Function) == "bad" {
			return nil, status.New(status.Aborted, "no")
		}
		return append(out, "ok"...), nil
	})
	var tr []wire.MD
	ctx := WithTrailerSink(context.Background(), &tr)
	r, err := cc.Call(ctx, out("good", nil, nil))
	if err != nil || string(r.Result()) != "ok" || len(tr) != 1 || tr[0].Value != "3ms" {
		t.Fatalf("result %v, trailers %v", err, tr)
	}
	r.Release()
	tr = nil
	if _, err := cc.Call(ctx, out("bad", nil, nil)); status.CodeOf(err) != status.Aborted || len(tr) != 1 {
		t.Fatalf("error %v, trailers %v", err, tr)
	}
	if SetTrailer(context.Background()) {
		t.Fatal("SetTrailer outside a handler reported success")
	}
}

// A handler that first asks for Done after its deadline passed gets a
// closed channel and DeadlineExceeded, not a double-close panic.
func TestDoneAfterDeadline(t *testing.T) {
	c := newCallCtx(context.Background(), time.Millisecond, nil)
	time.Sleep(5 * time.Millisecond)
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after the deadline")
	}
	if c.Err() != context.DeadlineExceeded {
		t.Fatalf("Err = %v", c.Err())
	}
	c.cancel(context.Canceled) // late CANCEL: no effect, no panic
	if c.Err() != context.DeadlineExceeded {
		t.Fatalf("Err after cancel = %v", c.Err())
	}
}

// Retained answers are bounded in bytes: one over the budget is kept as a
// ResourceExhausted error, and releasing frees the budget.
func TestRetainedBytesBounded(t *testing.T) {
	cc, sc := streamPair(t, Config{MaxRetainedBytes: 1500}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		return append(out, in.Args...), nil
	})
	ctx := context.Background()
	payload := make([]byte, 1000)
	a1, err := cc.Go(ctx, &Outgoing{Function: "echo", Args: payload, Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a1.Result(); err != nil {
		t.Fatal(err)
	}
	a2, _ := cc.Go(ctx, &Outgoing{Function: "echo", Args: payload, Retain: true})
	a2.Result() // the caller still gets its result; the retained copy is refused
	if _, _, err := sc.Answer(ctx, a1.ID()); err != nil {
		t.Fatalf("first answer: %v", err)
	}
	if _, _, err := sc.Answer(ctx, a2.ID()); status.CodeOf(err) != status.ResourceExhausted {
		t.Fatalf("second answer over the byte budget: %v", err)
	}
	a1.Release()
	a2.Release()
	a3, _ := cc.Go(ctx, &Outgoing{Function: "echo", Args: payload, Retain: true})
	a3.Result()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, err := sc.Answer(ctx, a3.ID())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after release: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
