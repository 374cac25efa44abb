package arbor

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A call, promise or stream cancelled after its connection was retired
// (a refusal beat the peer's GOAWAY: the client retires the connection
// and retries elsewhere, as Client.send does) and then shown never served
// by that GOAWAY gives back its exports, as without Retire: Retire is no
// GOAWAY, so calls cancelled then are not known to be served.
func TestCancelledAfterRetireThenRefusedReleaseTheirExports(t *testing.T) {
	for _, kind := range []string{"call", "promise", "stream"} {
		t.Run(fmt.Sprint(kind), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			called := make(chan struct{}, 1)
			c, err := Dial(ctx, "tcp://"+cancelThenGoAwayPeer(t, called, false))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cc := c.cur.Load()
			svc := NewService("sink")
			cctx, ccancel := context.WithCancel(ctx)
			defer ccancel()
			passThenCancel(t, c, kind, svc, cctx, ccancel, called, cc.Retire)
			deadline := time.Now().Add(2 * time.Second)
			for exportsOn(cc) != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d exports held 2 s after the peer's GOAWAY said the %s cancelled after Retire was never served", exportsOn(cc), kind)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}
