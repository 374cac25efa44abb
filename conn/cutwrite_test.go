package conn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/internal/testcerts"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// writeStuckPeer returns a client connection whose peer has sent its HELLO
// and reads nothing until the test reads from the returned socket.
func writeStuckPeer(t *testing.T, cfg Config) (*Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return helloPeer(t, l, cfg, func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) })
}

// secureStuckPeer is writeStuckPeer over scheme ("tls" or "quic"), with
// the transport's own connections.
func secureStuckPeer(t *testing.T, scheme string, cfg Config) (*Conn, net.Conn) {
	t.Helper()
	files := testcerts.Write(t, t.TempDir())
	ctx := context.Background()
	l, err := transport.Listen(ctx, scheme+"://127.0.0.1:0", &transport.Config{CertFile: files.ServerCert, KeyFile: files.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return helloPeer(t, l, cfg, func() (net.Conn, error) {
		return transport.Dial(ctx, l.URL(), &transport.Config{CAFile: files.CACert})
	})
}

func tlsStuckPeer(t *testing.T, cfg Config) (*Conn, net.Conn) { return secureStuckPeer(t, "tls", cfg) }

// stuckPeers are the transports whose callers must not wait in a full
// socket, by name.
var stuckPeers = []struct {
	name string
	peer func(*testing.T, Config) (*Conn, net.Conn)
}{{"tcp", writeStuckPeer}, {"tls", tlsStuckPeer}}

// socketOf is the TCP socket under nc (a TCP or TLS connection), to size
// its buffers.
func socketOf(nc net.Conn) interface {
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
} {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	return nc.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	})
}

// helloPeer accepts one connection on l that dial makes, sends it a HELLO
// and reads nothing from it; it returns the client Conn on the dialed end
// (with cfg) and the peer's socket.
func helloPeer(t *testing.T, l net.Listener, cfg Config, dial func() (net.Conn, error)) (*Conn, net.Conn) {
	t.Helper()
	peer := make(chan net.Conn, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			peer <- nil
			return
		}
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 64 << 20, KeepAlive: time.Hour}))
		peer <- nc
	}()
	nc, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Client(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	pc := <-peer
	if pc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		cc.Close()
		pc.Close()
	})
	return cc, pc
}

// A call whose large arguments are still being written when its context
// ends returns then, as its deadline says, not when the write ends (for a
// peer that stopped reading: never). What is left of the arguments is
// copied and written on after the call returned, so the peer still reads
// a whole CALL, then its CANCEL, and the caller may reuse its buffer at
// once.
func TestLargeCallReturnsAtDeadlineMidWrite(t *testing.T) {
	for _, sp := range cutPeers {
		for _, inflight := range []int{1, 2} { // written by the caller itself, or by the writer goroutine
			t.Run(sp.name+"/"+map[int]string{1: "alone", 2: "beside another call"}[inflight], func(t *testing.T) {
				testLargeCallMidWrite(t, sp.peer, inflight)
			})
		}
	}
}

func testLargeCallMidWrite(t *testing.T, stuckPeer func(*testing.T, Config) (*Conn, net.Conn), inflight int) {
	cc, pc := stuckPeer(t, Config{})
	if inflight == 2 {
		if _, err := cc.Go(context.Background(), out("other", nil, []byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	args := bytes.Repeat([]byte{7}, 32<<20) // far more than the sockets buffer
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { _, err := cc.Call(ctx, out("echo", nil, args)); errc <- err }()
	select {
	case err := <-errc:
		if status.CodeOf(err) != status.DeadlineExceeded {
			t.Fatalf("Call: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Call returned %v after its 200ms deadline", d)
		}
	case <-time.After(5 * time.Second):
		cc.Close()
		<-errc
		t.Fatal("Call with large arguments outlived its deadline by seconds, waiting for its write")
	}
	for i := range args {
		args[i] = 9 // the caller's buffer is its own again
	}

	// The peer now reads: the frames are whole, the arguments as
	// they were when sent.
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(pc, 64<<10, 64<<20)
	var gotCall, gotCancel bool
	for !gotCancel {
		h, p, err := r.Next()
		if err != nil {
			t.Fatalf("peer read: %v (call %v)", err, gotCall)
		}
		switch h.Type {
		case wire.TypeCall:
			c, err := wire.ParseCall(h.Flags, p)
			if err != nil {
				t.Fatal(err)
			}
			if string(c.Function) == "echo" {
				if len(c.Args) != len(args) || bytes.IndexByte(c.Args, 9) >= 0 {
					t.Fatalf("the peer got %d bytes of arguments (changed: %v); want %d unchanged", len(c.Args), bytes.IndexByte(c.Args, 9) >= 0, len(args))
				}
				gotCall = true
			}
		case wire.TypeCancel:
			if !gotCall {
				t.Fatal("CANCEL before the whole CALL")
			}
			gotCancel = true
		}
	}
}

// A cut whose write has already stopped when a closing connection sets its
// last writes' deadline (Drain, protocolError) is still a cut: the rest is
// written under that deadline, and the connection does not fail because
// of a timeout that was releaseRef's, not its own.
func TestCutBeforeLastWritesIsStillACut(t *testing.T) {
	cc, pc := writeStuckPeer(t, Config{})
	args := bytes.Repeat([]byte{7}, 32<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cc.Call(ctx, out("echo", nil, args))
	deadline := time.Now().Add(5 * time.Second)
	for {
		cc.wmu.Lock()
		inflight := cc.wflight != 0
		cc.wmu.Unlock()
		if inflight {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the call's write never started")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // blocked on the full socket

	// releaseRef's cut; the writer's write stops at once and it waits for
	// wmu, which lastWrites takes first.
	cc.wmu.Lock()
	cc.cutLocked()
	time.Sleep(100 * time.Millisecond)
	cc.wdeadline = time.Now().Add(10 * time.Second) // lastWrites, under the same lock
	_ = cc.nc.SetWriteDeadline(cc.wdeadline)
	cc.wmu.Unlock()

	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(pc, 64<<10, 64<<20)
	for {
		h, p, err := r.Next()
		if err != nil {
			cc.wmu.Lock()
			werr := cc.werr
			cc.wmu.Unlock()
			t.Fatalf("peer read: %v (connection's write error: %v)", err, werr)
		}
		if h.Type == wire.TypeCall {
			c, err := wire.ParseCall(h.Flags, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Args) != len(args) || !bytes.Equal(c.Args, args) {
				t.Fatalf("the peer got %d bytes of arguments, want %d unchanged", len(c.Args), len(args))
			}
			break
		}
	}
	if err := cc.Err(); err != nil {
		t.Fatalf("connection failed: %v", err)
	}
}

// Over TLS, where a write deadline would corrupt the connection, a
// call's large arguments go out in chunks: when its context ends, the
// write stops at the end of the chunk in flight, so the call returns then
// (here with a peer that reads, slowly: a peer that reads nothing holds
// the chunk, and the caller, until the keep-alive). The peer still reads
// a whole CALL holding the bytes as sent, then the CANCEL.
func TestLargeCallOverTLSReturnsAfterAChunk(t *testing.T) {
	ca := testcerts.NewCA(t, "cut")
	cert := ca.IssueTLS(t, "server", testcerts.Server, "127.0.0.1")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	args := bytes.Repeat([]byte{7}, 32<<20) // at 16 MB/s, two seconds of reading
	got := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			got <- err
			return
		}
		defer nc.Close()
		tc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}})
		if _, err := tc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 64 << 20, KeepAlive: time.Hour})); err != nil {
			got <- err
			return
		}
		nc.SetReadDeadline(time.Now().Add(20 * time.Second))
		r := wire.NewReader(slowReader{tc, 16 << 10, time.Millisecond}, 64<<10, 64<<20)
		sawCall := false
		for {
			h, p, err := r.Next()
			if err != nil {
				got <- fmt.Errorf("peer read: %v (after the CALL: %v)", err, sawCall)
				return
			}
			switch h.Type {
			case wire.TypeCall:
				c, err := wire.ParseCall(h.Flags, p)
				if err != nil {
					got <- err
					return
				}
				if string(c.Function) == "echo" {
					if len(c.Args) != len(args) || bytes.IndexByte(c.Args, 9) >= 0 {
						got <- fmt.Errorf("the peer got %d bytes of arguments (changed: %v); want %d unchanged", len(c.Args), bytes.IndexByte(c.Args, 9) >= 0, len(args))
						return
					}
					sawCall = true
				}
			case wire.TypeCancel:
				if !sawCall {
					got <- errors.New("CANCEL before the whole CALL")
				} else {
					got <- nil
				}
				return
			}
		}
	}()
	nc, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Client(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = cc.Call(ctx, out("echo", nil, args))
	if status.CodeOf(err) != status.DeadlineExceeded {
		t.Fatalf("Call: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Call returned %v after its 200ms deadline: it waited for its arguments' write", d)
	}
	for i := range args {
		args[i] = 9
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// A call that writes its own frame (it is alone in flight) into a socket
// that takes only part of it (a peer that stopped reading) does not wait
// for room: the rest goes to the writer goroutine, and the call returns
// at its deadline. The peer, once it reads, gets the whole CALL, then the
// CANCEL. Over TLS too.
func TestSmallCallDoesNotWaitInAFullSocket(t *testing.T) {
	for _, sp := range stuckPeers {
		t.Run(sp.name, func(t *testing.T) { testSmallCallInAFullSocket(t, sp.peer) })
	}
}

func testSmallCallInAFullSocket(t *testing.T, stuckPeer func(*testing.T, Config) (*Conn, net.Conn)) {
	cc, pc := stuckPeer(t, Config{})
	socketOf(pc).SetReadBuffer(4 << 10)
	socketOf(cc.nc).SetWriteBuffer(4 << 10)
	args := bytes.Repeat([]byte{7}, bigWrite-1024) // copied into the write buffer: no cut of a reference
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { _, err := cc.Call(ctx, out("echo", nil, args)); errc <- err }()
	select {
	case err := <-errc:
		if status.CodeOf(err) != status.DeadlineExceeded {
			t.Fatalf("Call: %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		cc.Close()
		<-errc
		t.Fatal("the call outlived its deadline by seconds, waiting in its own write")
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := wire.NewReader(pc, 64<<10, 64<<20)
	sawCall := false
	for {
		h, p, err := r.Next()
		if err != nil {
			t.Fatalf("peer read: %v (after the CALL: %v)", err, sawCall)
		}
		if h.Type == wire.TypeCall {
			c, err := wire.ParseCall(h.Flags, p)
			if err != nil || !bytes.Equal(c.Args, args) {
				t.Fatalf("the CALL: %d bytes of arguments, %v", len(c.Args), err)
			}
			sawCall = true
		}
		if h.Type == wire.TypeCancel {
			if !sawCall {
				t.Fatal("CANCEL before the whole CALL")
			}
			return
		}
	}
}

// Over QUIC too, a caller that writes its own frame never waits for a
// peer that stopped reading: once the stream's flow-control window is
// full, the frame goes to the writer goroutine and the call returns at
// its deadline. Every call here does.
func TestQUICCallerDoesNotWaitForFlowControl(t *testing.T) {
	cc, _ := secureStuckPeer(t, "quic", Config{}) // the peer never reads: the window fills
	args := make([]byte, bigWrite-1024)           // copied into the write buffer
	for i := range 40 {                           // about 2.5 MB: past any window quic-go starts with
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		errc := make(chan error, 1)
		go func() { _, err := cc.Call(ctx, out("echo", nil, args)); errc <- err }()
		select {
		case err := <-errc:
			if status.CodeOf(err) != status.DeadlineExceeded {
				t.Fatalf("call %d: %v, want DeadlineExceeded", i, err)
			}
		case <-time.After(5 * time.Second):
			cancel()
			t.Fatalf("call %d outlived its deadline by seconds, waiting for flow control in its own write", i)
		}
		cancel()
	}
}
