package arbor

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// cancelThenGoAwayPeer is a framePeer that, once it has read a CALL and
// then the CANCEL of it, sends a GOAWAY that serves none (LastID 0;
// served: LastID the call's id), as a draining server whose GOAWAY
// crossed the CANCEL would.
func cancelThenGoAwayPeer(t *testing.T, called chan<- struct{}, served bool) string {
	var last uint64
	return framePeer(t, func(nc net.Conn, h wire.Header) {
		switch h.Type {
		case wire.TypeCall:
			last = h.ID
			called <- struct{}{}
		case wire.TypeCancel:
			lastID := uint64(0)
			if served {
				lastID = last // it had the call: its capabilities are its own
			}
			nc.Write(wire.AppendGoAway(nil, wire.GoAway{LastID: lastID, Code: uint32(Unavailable), Message: []byte("test: going away")}))
		}
	})
}

// A call, promise or stream cancelled before the peer's GOAWAY said it
// was not served (LastID below it) gives back the exports its arguments
// made then, although the GOAWAY no longer finds the call: the peer,
// which never took them, releases nothing. One the GOAWAY says was
// served (LastID its id) leaves them to the peer.
func TestCancelledThenRefusedCallsReleaseTheirExports(t *testing.T) {
	for _, served := range []bool{false, true} {
		for _, kind := range []string{"call", "promise", "stream"} {
			t.Run(fmt.Sprintf("%s/served=%v", kind, served), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				called := make(chan struct{}, 1)
				c, err := Dial(ctx, "tcp://"+cancelThenGoAwayPeer(t, called, served))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				svc := NewService("sink")
				cctx, ccancel := context.WithCancel(ctx)
				passThenCancel(t, c, kind, svc, cctx, ccancel, called, nil)
				ccancel()
				cc := c.cur.Load()
				deadline := time.Now().Add(2 * time.Second)
				for cc.Usable() {
					if time.Now().After(deadline) {
						t.Fatal("no GOAWAY")
					}
					time.Sleep(5 * time.Millisecond)
				}
				if served { // the peer took them: nothing released for it
					time.Sleep(50 * time.Millisecond)
					if n := exportsOn(cc); n != 1 {
						t.Fatalf("%d exports after the peer's GOAWAY said the cancelled %s was served, want 1 (the peer's)", n, kind)
					}
					return
				}
				for exportsOn(cc) != 0 {
					if time.Now().After(deadline) {
						t.Fatalf("%d exports held 2 s after the peer's GOAWAY said the cancelled %s was never served", exportsOn(cc), kind)
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
}

// passThenCancel makes a call, promise or stream (kind) on c passing svc
// and, once the peer has it (called), runs between (nil: nothing) and
// cancels it, checking that it ends as Canceled.
func passThenCancel(t *testing.T, c *Client, kind string, svc *Service, cctx context.Context, ccancel context.CancelFunc, called <-chan struct{}, between func()) {
	t.Helper()
	if between == nil {
		between = func() {}
	}
	switch kind {
	case "call":
		go func() { <-called; between(); ccancel() }()
		if _, err := Call1[int](cctx, c, "take", svc); CodeOf(err) != Canceled {
			t.Fatalf("cancelled call: %v", err)
		}
	case "promise":
		p := Go1[int](cctx, c, "take", svc)
		defer p.Release()
		<-called
		between()
		p.Cancel()
		if _, err := p.Wait(); CodeOf(err) != Canceled {
			t.Fatalf("cancelled promise: %v", err)
		}
	case "stream":
		st, err := CallServerStream[int](cctx, c, "take", svc)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		<-called
		between()
		ccancel()
		if _, err = st.Recv(); CodeOf(err) != Canceled {
			t.Fatalf("cancelled stream: %v", err)
		}
	default:
		t.Fatalf("unknown kind %q", kind)
	}
}
