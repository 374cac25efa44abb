package arbor

import (
	"context"
	"testing"
	"time"
)

// A handler that returns a capability just as the caller cancels (here:
// after its context ended) has it exported for the RESULT, which crosses
// the CANCEL. The client, no longer waiting, must still release the
// reference the server counted for it; otherwise the export is held
// until the connection closes.
func TestResultCapsOfCancelledCallReleased(t *testing.T) {
	for _, kind := range []string{"call", "promise"} {
		t.Run(kind, func(t *testing.T) {
			ctx := ctx10(t)
			released := make(chan struct{}, 1)
			started := make(chan struct{}, 1)
			srv := NewServer()
			mustOK(t, Handle0(srv, "make", func(hctx context.Context) (*Service, error) {
				started <- struct{}{}
				<-hctx.Done() // the work was done as the cancel came: it answers anyway
				return holder("h", 7).OnRelease(func() { released <- struct{}{} }), nil
			}))
			c, _ := serveCaps(t, srv)
			cctx, ccancel := context.WithCancel(ctx)
			defer ccancel()
			switch kind {
			case "call":
				go func() { <-started; ccancel() }()
				if _, err := Call0[*Ref](cctx, c, "make"); CodeOf(err) != Canceled {
					t.Fatalf("cancelled call: %v", err)
				}
			case "promise":
				p := Go0[*Ref](cctx, c, "make")
				defer p.Release()
				<-started
				p.Cancel()
				if _, err := p.Wait(); CodeOf(err) != Canceled {
					t.Fatalf("cancelled promise: %v", err)
				}
			}
			select {
			case <-released:
			case <-time.After(2 * time.Second):
				t.Fatalf("the service in the result of the cancelled %s is still exported 2 s later", kind)
			}
		})
	}
}
