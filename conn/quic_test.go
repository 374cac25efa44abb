package conn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/internal/testcerts"
	"github.com/arbor-rpc/arbor/transport"
)

// quicPair connects a client and a server Conn over real QUIC: calls and
// streams run on the connection's stream, framed as on TCP.
func quicPair(t *testing.T, scfg, ccfg Config, h HandlerFunc) (*Conn, *Conn) {
	t.Helper()
	files := testcerts.Write(t, t.TempDir())
	ctx := context.Background()
	l, err := transport.Listen(ctx, "quic://127.0.0.1:0", &transport.Config{CertFile: files.ServerCert, KeyFile: files.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := connectPair(t, l, func() (net.Conn, error) {
		return transport.Dial(ctx, l.URL(), &transport.Config{CAFile: files.CACert})
	}, scfg, ccfg, h)
	return cc, sc
}

func TestQUICUnaryAndCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	handlerErr := make(chan error, 1)
	cc, _ := quicPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		switch string(in.Function) {
		case "block":
			started <- struct{}{}
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return nil, ctx.Err()
		case "fail":
			return nil, status.New(status.NotFound, "nothing here")
		}
		return append(out, in.Args...), nil
	})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				msg := strings.Repeat("q", g*100+i)
				r, err := cc.Call(context.Background(), out("echo", nil, []byte(msg)))
				if err != nil || string(r.Result()) != msg {
					t.Errorf("echo: %v", err)
					return
				}
				r.Release()
			}
		}()
	}
	wg.Wait()
	if _, err := cc.Call(context.Background(), out("fail", nil, nil)); status.CodeOf(err) != status.NotFound {
		t.Fatalf("remote error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := cc.Call(ctx, out("block", nil, nil)); errc <- err }()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("caller: %v", err)
	}
	if err := <-handlerErr; err != context.Canceled {
		t.Fatalf("handler: %v", err)
	}
}

func TestQUICStreams(t *testing.T) {
	cc, _ := quicPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		n := 0
		for {
			m, err := in.Stream.Recv()
			if err == io.EOF {
				return append(out, "done"...), nil
			}
			if err != nil {
				return nil, err
			}
			n++
			if err := in.Stream.Send(bytes.ToUpper(m)); err != nil {
				return nil, err
			}
		}
	})
	s, err := cc.OpenStream(context.Background(), out("chat", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := 0; i < 500; i++ {
			s.Send([]byte("hello"))
		}
		s.CloseSend()
	}()
	for i := 0; i < 500; i++ {
		if m, err := s.Recv(); err != nil || string(m) != "HELLO" {
			t.Fatalf("recv %d: %q %v", i, m, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if res, err := s.Result(); err != nil || string(res) != "done" {
		t.Fatalf("result %q %v", res, err)
	}
}

func TestQUICFlowControl(t *testing.T) {
	const window = 64 << 10
	var sent atomic.Int64
	cc, _ := quicPair(t, Config{}, Config{StreamWindow: window}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		m := make([]byte, 1024)
		for sent.Load() < 32<<20 {
			if err := in.Stream.Send(m); err != nil {
				return nil, err
			}
			sent.Add(1024)
		}
		return nil, nil
	})
	s, err := cc.OpenStream(context.Background(), out("download", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Without reading, the sender stalls once our window and QUIC's are full.
	var last int64 = -1
	for i := 0; i < 1000; i++ {
		blockBriefly()
		if cur := sent.Load(); cur == last && cur > 0 {
			break
		} else {
			last = cur
		}
	}
	if got := sent.Load(); got >= 32<<20 {
		t.Fatalf("sender was never held back (%d bytes)", got)
	}
	var n int64
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(m))
	}
	if n != 32<<20 {
		t.Fatalf("received %d bytes", n)
	}
}

func TestQUICBrokenConnection(t *testing.T) {
	started := make(chan struct{})
	cc, sc := quicPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	errc := make(chan error, 1)
	go func() { _, err := cc.Call(context.Background(), out("block", nil, nil)); errc <- err }()
	<-started
	sc.Close()
	if err := <-errc; status.CodeOf(err) != status.Unavailable {
		t.Fatalf("got %v", err)
	}
}

// Cancelling one stream on a native-stream connection ends that stream
// only: the server's handler sees its context end, and other calls go on.
func TestQUICCancelEndsOnlyThatStream(t *testing.T) {
	started := make(chan struct{}, 1)
	handlerErr := make(chan error, 1)
	cc, sc := quicPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		if in.Stream == nil {
			return append(out, in.Args...), nil
		}
		started <- struct{}{}
		for { // send until the caller goes away
			if err := in.Stream.Send(make([]byte, 512)); err != nil {
				handlerErr <- err
				return nil, err
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := cc.OpenStream(ctx, out("firehose", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	s.Recv()
	cancel()
	if err := <-handlerErr; err == nil {
		t.Fatal("handler's send did not fail")
	}
	time.Sleep(50 * time.Millisecond) // let a wrongly closed connection show
	if sc.Err() != nil || cc.Err() != nil {
		t.Fatalf("connection closed by one cancelled stream: server %v, client %v", sc.Err(), cc.Err())
	}
	r, err := cc.Call(context.Background(), out("echo", nil, []byte("still here")))
	if err != nil || string(r.Result()) != "still here" {
		t.Fatalf("call after the cancel: %v", err)
	}
	r.Release()
}
