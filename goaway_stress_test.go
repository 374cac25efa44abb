package arbor

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// Calls, promises and streams, each passing a service of its own, some
// cancelled at random points, race a GOAWAY whose LastID is the last
// call the peer read. Afterwards exactly the calls the peer read before
// it (served: its own to release, which this peer never does) hold their
// exports: every other was given back once.
func TestGoAwayRaceStress(t *testing.T) {
	for iter := 0; iter < 8; iter++ {
		var read atomic.Int64 // calls the peer read before its GOAWAY
		const n, goAwayAt = 60, 30
		addr := framePeer(t, func(nc net.Conn, h wire.Header) {
			if h.Type != wire.TypeCall {
				return
			}
			if k := read.Add(1); k == goAwayAt {
				nc.Write(wire.AppendGoAway(nil, wire.GoAway{LastID: h.ID, Code: uint32(Unavailable), Message: []byte("test")}))
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := Dial(ctx, "tcp://"+addr)
		if err != nil {
			t.Fatal(err)
		}
		cc := c.cur.Load()
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, ccancel := context.WithCancel(ctx)
				defer ccancel()
				if rand.IntN(2) == 0 {
					go func() {
						time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
						ccancel()
					}()
				} else {
					time.AfterFunc(300*time.Millisecond, ccancel) // the served ones are never answered
				}
				svc := NewService("sink")
				switch i % 3 {
				case 0:
					Call1[int](cctx, c, "take", svc)
				case 1:
					p := Go1[int](cctx, c, "take", svc)
					p.Wait()
					p.Release()
				case 2:
					st, err := CallServerStream[int](cctx, c, "take", svc)
					if err == nil {
						st.Recv()
						st.Close()
					}
				}
			}()
		}
		wg.Wait()
		deadline := time.Now().Add(2 * time.Second)
		want := int(min(read.Load(), goAwayAt))
		for exportsOn(cc) != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := exportsOn(cc); got != want {
			t.Fatalf("iteration %d: %d exports held, want %d (the calls the peer read before its GOAWAY)", iter, got, want)
		}
		c.Close()
		cancel()
	}
}
