package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
)

// connectPair completes the handshake of a server Conn (handler h) on the
// first connection l accepts and a client Conn on what dial returns; the
// test's cleanup closes both.
func connectPair(t *testing.T, l net.Listener, dial func() (net.Conn, error), scfg, ccfg Config, h Handler) (*Conn, *Conn) {
	t.Helper()
	defer l.Close()
	scfg.Handler = h
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		c, err := Server(nc, scfg)
		ch <- res{c, err}
	}()
	nc, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Client(nc, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("server set-up: %v", r.err)
	}
	t.Cleanup(func() { cc.Close(); r.c.Close() })
	return cc, r.c
}

// streamPair connects a client to a server whose handler is h, over TCP.
func streamPair(t *testing.T, scfg, ccfg Config, h HandlerFunc) (*Conn, *Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return connectPair(t, l, func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) }, scfg, ccfg, h)
}

func TestBidiStream(t *testing.T) {
	cc, _ := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		n := 0
		for {
			m, err := in.Stream.Recv()
			if err == io.EOF {
				return append(out, strconv.Itoa(n)...), nil
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
	const n = 1000
	go func() {
		for i := 0; i < n; i++ {
			if err := s.Send([]byte(fmt.Sprintf("msg %d", i))); err != nil {
				t.Errorf("send: %v", err)
				return
			}
		}
		s.CloseSend()
	}()
	for i := 0; i < n; i++ {
		m, err := s.Recv()
		if err != nil || string(m) != fmt.Sprintf("MSG %d", i) {
			t.Fatalf("recv %d: %q %v", i, m, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("after the last message: %v", err)
	}
	if res, err := s.Result(); err != nil || string(res) != strconv.Itoa(n) {
		t.Fatalf("result %q %v", res, err)
	}
}

func TestStreamErrorMidway(t *testing.T) {
	cc, _ := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		in.Stream.Send([]byte("one"))
		in.Stream.Send([]byte("two"))
		return nil, status.New(status.DataLoss, "disk on fire")
	})
	s, err := cc.OpenStream(context.Background(), out("f", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		if m, err := s.Recv(); err != nil || string(m) != want {
			t.Fatalf("got %q %v", m, err)
		}
	}
	_, err = s.Recv()
	var se *status.Error
	if !errors.As(err, &se) || se.Code != status.DataLoss || se.Message != "disk on fire" {
		t.Fatalf("got %v", err)
	}
}

func TestStreamCancelEndsBothSides(t *testing.T) {
	handlerErr := make(chan error, 1)
	started := make(chan struct{})
	cc, _ := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		close(started)
		_, err := in.Stream.Recv() // the client never sends
		handlerErr <- err
		return nil, err
	})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := cc.OpenStream(ctx, out("f", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	if _, err := s.Recv(); !errors.Is(err, context.Canceled) {
		t.Fatalf("client Recv: %v", err)
	}
	if err := s.Send([]byte("x")); err == nil {
		t.Fatal("send after cancel succeeded")
	}
	if err := <-handlerErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler Recv: %v", err)
	}
}

// A handler sends far more than the window to a client that does not read:
// the handler blocks, and the heap does not grow with what it tried to send.
func TestFlowControlBoundsMemory(t *testing.T) {
	const window = 64 << 10
	const msg = 1 << 10
	const total = 64 << 20 // 1000x the window
	var sent atomic.Int64
	cc, _ := streamPair(t, Config{}, Config{StreamWindow: window, ConnWindow: window},
		func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
			m := make([]byte, msg)
			for sent.Load() < total {
				if err := in.Stream.Send(m); err != nil {
					return nil, err
				}
				sent.Add(msg)
			}
			return nil, nil
		})
	s, err := cc.OpenStream(context.Background(), out("download", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the sender has stalled on credit.
	var last int64 = -1
	for i := 0; i < 200; i++ {
		runtime.Gosched()
		cur := sent.Load()
		if cur == last && cur > 0 {
			break
		}
		last = cur
		if i%10 == 9 {
			blockBriefly()
		}
	}
	if got := sent.Load(); got > 2*window+msg {
		t.Fatalf("sender got %d bytes out against a %d-byte window", got, window)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// Read everything; the sender moves on only as credit comes back.
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
		if n == 16<<20 {
			runtime.GC()
			var mid runtime.MemStats
			runtime.ReadMemStats(&mid)
			if grow := int64(mid.HeapInuse) - int64(before.HeapInuse); grow > 8<<20 {
				t.Fatalf("heap grew by %d bytes while streaming", grow)
			}
		}
	}
	if n != total {
		t.Fatalf("received %d of %d bytes", n, total)
	}
}

func blockBriefly() {
	c := make(chan struct{})
	go func() { close(c) }()
	<-c
}

func TestClientStreamResult(t *testing.T) {
	cc, _ := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		sum := 0
		for {
			m, err := in.Stream.Recv()
			if err == io.EOF {
				return append(out, strconv.Itoa(sum)...), nil
			}
			if err != nil {
				return nil, err
			}
			v, _ := strconv.Atoi(string(m))
			sum += v
		}
	})
	s, err := cc.OpenStream(context.Background(), out("sum", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		if err := s.Send([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	s.CloseSend()
	if res, err := s.Result(); err != nil || string(res) != "5050" {
		t.Fatalf("got %q %v", res, err)
	}
}

func TestStreamBrokenConnection(t *testing.T) {
	started := make(chan struct{})
	cc, sc := streamPair(t, Config{}, Config{}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	s, err := cc.OpenStream(context.Background(), out("f", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	sc.NetConn().Close()
	if _, err := s.Recv(); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("got %v", err)
	}
}

// Streams that end with unread messages give their connection credit
// back, so later streams on the connection are not starved.
func TestUnreadMessagesReturnCredit(t *testing.T) {
	const window = 32 << 10
	cc, _ := streamPair(t, Config{StreamWindow: window, ConnWindow: window}, Config{},
		func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
			if string(in.Function) == "ignore" {
				return nil, nil // returns without reading what was sent
			}
			n := 0
			for {
				m, err := in.Stream.Recv()
				if err == io.EOF {
					return append(out, strconv.Itoa(n)...), nil
				}
				if err != nil {
					return nil, err
				}
				n += len(m)
			}
		})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := make([]byte, 1024)
	for i := 0; i < 4; i++ {
		s, err := cc.OpenStream(ctx, out("ignore", nil, nil))
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 16; j++ { // half the window each, until the handler has returned
			if err := s.Send(msg); err != nil {
				break
			}
		}
		s.Result()
	}
	s, err := cc.OpenStream(ctx, out("count", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 100; j++ { // 100 KiB through a 32 KiB connection window
		if err := s.Send(msg); err != nil {
			t.Fatalf("send %d: %v (connection credit leaked)", j, err)
		}
	}
	s.CloseSend()
	if res, err := s.Result(); err != nil || string(res) != strconv.Itoa(100*1024) {
		t.Fatalf("result %q %v", res, err)
	}
}

// Empty stream messages are flow-controlled too: a window counted in
// payload bytes let a sender queue any number of them (each held as a
// queue entry) at a receiver that does not read.
func TestEmptyStreamMessagesAreFlowControlled(t *testing.T) {
	const window = 16 << 10
	queued := make(chan *Stream, 1)
	release := make(chan struct{})
	cc, _ := streamPair(t, Config{StreamWindow: window, ConnWindow: window}, Config{},
		func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
			queued <- in.Stream
			<-release // reads nothing until told
			return out, nil
		})
	defer close(release)
	st, err := cc.OpenStream(context.Background(), out("sink", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	ss := <-queued
	go func() {
		for range 1 << 20 {
			if st.Send(nil) != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	ss.mu.Lock()
	n := len(ss.msgs) - ss.head
	ss.mu.Unlock()
	if n > window {
		t.Fatalf("%d empty messages queued at a receiver with a %d-byte window", n, window)
	}
	st.Cancel()
}
