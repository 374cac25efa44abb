package arbor

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// stallingPeer is a mem: peer that answers nothing: it reads frames
// until it has seen calls CALL frames (their ids go to ids), then stops
// reading until resume is closed. It returns a client on it and the
// peer's end of the connection.
func stallingPeer(t *testing.T, calls int, ids chan<- uint64, resume <-chan struct{}) (*Client, net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	l, err := transport.Listen(ctx, "mem:stall", mem)
	if err != nil {
		t.Fatal(err)
	}
	ncc := make(chan net.Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			close(ncc)
			return
		}
		ncc <- nc
		nc.Write(wire.AppendHello(nil, wire.Hello{Version: wire.Version, MaxFrame: 8 << 20, KeepAlive: time.Hour}))
		r := wire.NewReader(nc, 64<<10, 8<<20)
		seen := 0
		for {
			if seen == calls {
				<-resume
				seen++
			}
			h, _, err := r.Next()
			if err != nil {
				return
			}
			if h.Type == wire.TypeCall && seen < calls {
				seen++
				ids <- h.ID
			}
		}
	}()
	c, err := Dial(ctx, "mem:stall", WithTransport(mem), WithKeepAlive(time.Hour, 0))
	if err != nil {
		t.Fatal(err)
	}
	nc := <-ncc
	t.Cleanup(func() {
		c.Close()
		l.Close()
		nc.Close()
		<-done
	})
	return c, nc
}

// fillUntilBlocked sends promises with large arguments until one waits
// for room in the write queue (the peer reads nothing).
func fillUntilBlocked(t *testing.T, ctx context.Context, c *Client) {
	t.Helper()
	big := make([]byte, 1<<20)
	var sent atomic.Int32
	go func() {
		for ctx.Err() == nil {
			Go1[int](ctx, c, "fill", big).quiet()
			sent.Add(1)
		}
	}()
	last, since := int32(-1), time.Now()
	for time.Since(since) < 300*time.Millisecond {
		if n := sent.Load(); n != last {
			last, since = n, time.Now()
		}
		if last > 64 {
			t.Fatal("the write queue never filled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet drops a test promise without the GC warning.
func (p *Promise[R]) quiet() {
	if p.promise != nil && p.rel != nil {
		p.rel.done.Store(true)
	}
}

// A promise released before its answer drops the capabilities in that
// answer from the call's completion hook, which runs on the connection's
// reader: that hook must not wait for room in the write queue, or a peer
// that is not reading for a while stops this side's reader, and answers
// already arrived (call D's, behind the promise's) are not delivered.
func TestReleasedPromiseHookDoesNotBlockReader(t *testing.T) {
	for _, kind := range []string{"Release", "PipelineRef"} {
		t.Run(kind, func(t *testing.T) {
			ids := make(chan uint64, 4)
			resume := make(chan struct{})
			c, nc := stallingPeer(t, 2, ids, resume)
			defer close(resume)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			fctx, fcancel := context.WithCancel(ctx)
			defer fcancel()

			p := Go0[*Ref](ctx, c, "make")
			var ref *Ref
			if kind == "PipelineRef" {
				ref = PipelineRef(p)
			}
			idA := <-ids
			errD := make(chan error, 1)
			go func() {
				_, err := Call0[int](ctx, c, "other")
				errD <- err
			}()
			idD := <-ids
			switch kind {
			case "Release":
				p.Release() // before the answer: its capabilities are dropped when it comes
			case "PipelineRef":
				p.Release()
				ref.Close() // the last reference pipelined on it: released when the answer comes
			}

			fillUntilBlocked(t, fctx, c)
			go func() {
				nc.Write(wire.AppendResult(nil, idA, []byte{0xc0}, nil, []wire.CapDescriptor{{Kind: wire.CapSenderHosted, ID: 7}}))
				nc.Write(wire.AppendResult(nil, idD, []byte{0x05}, nil, nil))
			}()
			select {
			case err := <-errD:
				if err != nil {
					t.Fatalf("call D: %v", err)
				}
			case <-time.After(time.Second):
				t.Fatalf("call D's RESULT, sent after the released promise's, was not delivered within 1 s (%s): the promise's completion hook waits on the reader for room in the write queue", kind)
			}
		})
	}
}
