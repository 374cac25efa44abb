package conn

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Large arguments and results are written from where they lie (queueRef),
// not copied into the write buffer. Callers reuse their argument buffer as
// soon as Call returns, interleaved with small calls: every echo must come
// back intact, and (under -race) the writer must be done with a buffer
// before its owner writes to it again.
func TestLargePayloadsByReference(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bigWrite+1000*(g+1))
			for i := range 6 {
				for j := range buf {
					buf[j] = byte(g*31 + i*7 + j)
				}
				want := bytes.Clone(buf)
				r, err := p.client.Call(ctx, out("echo", nil, buf))
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(r.Result(), want) {
					errs <- fmt.Errorf("caller %d call %d: large echo corrupted", g, i)
				}
				if !r.Owned() {
					errs <- fmt.Errorf("caller %d call %d: a %d-byte result was copied, not handed over", g, i, len(want))
				}
				r.Release()
				clear(buf) // the caller owns its buffer again
				if got, err := callString(t, p.client, ctx, "echo", "small"); err != nil || got != "small" {
					errs <- fmt.Errorf("small call between large ones: %q %v", got, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// releaseRef gives the caller its buffer back: a batch not yet taken by
// the writer gets a copy instead, a batch being written is waited for.
func TestReleaseRef(t *testing.T) {
	c := &Conn{wgen: 1}
	c.wcond.L = &c.wmu
	b := bytes.Repeat([]byte{7}, 100)
	c.wmu.Lock()
	c.wbuf = append(c.wbuf, "head"...)
	gen := c.queueRef(b)
	c.wmu.Unlock()
	c.releaseRef(gen, b)
	if len(c.wsegs) != 1 || !bytes.Equal(c.wsegs[0].b, b) || &c.wsegs[0].b[0] == &b[0] {
		t.Fatal("a queued reference was not replaced by a copy")
	}
	b[0] = 9 // the caller's again: the queued copy must not change
	if c.wsegs[0].b[0] != 7 {
		t.Fatal("the queued payload changed with the caller's buffer")
	}

	// Being written: releaseRef waits until the writer is done.
	c.wmu.Lock()
	c.wflight, c.wgen = gen, gen+1
	c.wsegs = nil
	c.wmu.Unlock()
	released := make(chan struct{})
	go func() { c.releaseRef(gen, b); close(released) }()
	select {
	case <-released:
		t.Fatal("releaseRef returned while its batch was being written")
	case <-time.After(50 * time.Millisecond):
	}
	c.wmu.Lock()
	c.wflight = 0
	c.wcond.Broadcast()
	c.wmu.Unlock()
	select {
	case <-released:
	case <-time.After(5 * time.Second):
		t.Fatal("releaseRef did not return once the batch was written")
	}
	c.releaseRef(gen, b) // written long ago: returns at once
}

// OnClose runs once, after the connection's goroutines have ended.
func TestOnClose(t *testing.T) {
	called := make(chan *Conn, 2)
	p := newPair(t, Config{KeepAlive: time.Hour, OnClose: func(c *Conn) { called <- c }}, Config{})
	p.client.Close()
	select {
	case c := <-called:
		if c != p.server {
			t.Fatal("OnClose got another connection")
		}
		if c.Err() == nil {
			t.Fatal("OnClose ran before the connection closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnClose not called after the peer closed")
	}
	p.server.Close()
	select {
	case <-called:
		t.Fatal("OnClose called twice")
	case <-time.After(50 * time.Millisecond):
	}
}
