package arbor

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// framePeer is a server that answers no call: it sends its HELLO, then
// hands each frame it reads to fn (which may write to the connection),
// and keeps the connection open. It returns its address.
func framePeer(t *testing.T, fn func(nc net.Conn, h wire.Header)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Hour}))
		r := wire.NewReader(nc, 64<<10, 1<<20)
		for {
			h, _, err := r.Next()
			if err != nil {
				return
			}
			fn(nc, h)
		}
	}()
	return l.Addr().String()
}

// goAwayPeer is a framePeer that sends a GOAWAY serving none (LastID 0)
// once it has read count CALL frames.
func goAwayPeer(t *testing.T, count int) string {
	calls := 0
	return framePeer(t, func(nc net.Conn, h wire.Header) {
		if h.Type == wire.TypeCall {
			if calls++; calls == count {
				nc.Write(wire.AppendGoAway(nil, wire.GoAway{LastID: 0, Code: uint32(Unavailable), Message: []byte("test: going away")}))
			}
		}
	})
}

// A promise or a stream whose CALL the peer's GOAWAY refused (never
// served) gives back the exports its arguments made at once, as a
// refused unary call does: the peer, which never took them, releases
// nothing, and the connection may stay open long (draining).
func TestRefusedCallsReleaseTheirExports(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, kind := range []string{"promise", "stream"} {
		t.Run(kind, func(t *testing.T) {
			c, err := Dial(ctx, "tcp://"+goAwayPeer(t, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			svc := NewService("sink")
			switch kind {
			case "promise":
				p := Go1[int](ctx, c, "take", svc)
				defer p.Release()
				_, err := p.Wait()
				wantRefused(t, err)
			case "stream":
				st, err := CallServerStream[int](ctx, c, "take", svc)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				_, err = st.Recv()
				wantRefused(t, err)
			}
			cc := c.cur.Load()
			deadline := time.Now().Add(2 * time.Second)
			for exportsOn(cc) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d exports held 2 s after the peer refused the %s that made them", exportsOn(cc), kind)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func wantRefused(t *testing.T, err error) {
	t.Helper()
	if CodeOf(err) != Unavailable {
		t.Fatalf("refused: %v, want Unavailable", err)
	}
}
