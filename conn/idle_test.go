package conn

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// running counts the goroutines in this process whose stacks hold fn
// (a conn method name such as "writeLoop").
func running(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "conn.(*Conn)."+fn+"(")
}

// writeLoops counts the goroutines running writeLoop in this process.
func writeLoops() int { return running("writeLoop") }

// pollUntil polls cond until it holds or d passes.
func pollUntil(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// burst makes n concurrent echo calls of size bytes each and checks them.
func burst(t *testing.T, c *Conn, n, size int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte('a' + g%26)}, size)
			r, err := c.Call(context.Background(), out("echo", nil, msg))
			if err != nil {
				t.Errorf("call %d: %v", g, err)
				return
			}
			if !bytes.Equal(r.Result(), msg) {
				t.Errorf("call %d: echo corrupted", g)
			}
			r.Release()
		}()
	}
	wg.Wait()
}

// The writer goroutine runs only while writes are left to it: a
// connection with one call at a time writes inline and has none, a burst
// starts one, and it exits after writerIdle, dropping the write buffers
// the burst grew. A burst after that is served as before.
func TestWriterGoroutineOnDemand(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	for range 3 {
		if got, err := callString(t, p.client, context.Background(), "echo", "x"); err != nil || got != "x" {
			t.Fatalf("echo: %q %v", got, err)
		}
	}
	if n := writeLoops(); n != 0 {
		t.Fatalf("%d writer goroutines after calls one at a time, want 0 (they write inline)", n)
	}
	burst(t, p.client, 64, 16<<10)
	p.server.wmu.Lock()
	started := p.server.wloop
	p.server.wmu.Unlock()
	if !started {
		t.Fatal("a burst of 64 concurrent calls started no writer goroutine on the server")
	}
	if !pollUntil(writerIdle+3*time.Second, func() bool { return writeLoops() == 0 }) {
		t.Fatalf("%d writer goroutines %v after the burst, want 0", writeLoops(), writerIdle+3*time.Second)
	}
	p.server.wmu.Lock()
	wb, ws := cap(p.server.wbuf), cap(p.server.wspare)
	p.server.wmu.Unlock()
	if wb > idleWriteBuf || ws > idleWriteBuf {
		t.Fatalf("idle server keeps write buffers of %d and %d bytes, want at most %d", wb, ws, idleWriteBuf)
	}
	burst(t, p.client, 64, 16<<10) // after idling: the writer starts again
	if err := p.server.Err(); err != nil {
		t.Fatalf("server closed: %v", err)
	}
}

// A connection whose writes are all inline (no writer goroutine to exit)
// has its burst-grown write buffers trimmed by a quiet keep-alive tick.
func TestKeepAliveTrimsWriteBuffers(t *testing.T) {
	p := newPair(t, Config{KeepAlive: 200 * time.Millisecond}, Config{KeepAlive: 200 * time.Millisecond})
	big := strings.Repeat("z", 48<<10) // under bigWrite: copied into wbuf
	if got, err := callString(t, p.client, context.Background(), "echo", big); err != nil || got != big {
		t.Fatalf("echo: %d bytes, %v", len(got), err)
	}
	ok := pollUntil(3*time.Second, func() bool {
		p.server.wmu.Lock()
		defer p.server.wmu.Unlock()
		return cap(p.server.wbuf) <= idleWriteBuf && cap(p.server.wspare) <= idleWriteBuf
	})
	if !ok {
		t.Fatal("write buffers grown by a 48 KiB result are still held after quiet keep-alive ticks")
	}
	if got, err := callString(t, p.client, context.Background(), "echo", big); err != nil || got != big {
		t.Fatalf("echo after trimming: %d bytes, %v", len(got), err)
	}
}

// The reader holds a small buffer while calls come one at a time, the
// full one while a large frame or a burst arrives, and the small one again
// once the traffic has been quiet for wire.QuietPeriod; large calls and
// bursts succeed after the buffer shrank.
func TestReadBufferFollowsTraffic(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	small := func() {
		t.Helper()
		time.Sleep(wire.QuietPeriod + 50*time.Millisecond) // no large read for a quiet period
		for range 2 {                                      // the second call's frame is read into the shrunk buffer
			if got, err := callString(t, p.client, context.Background(), "echo", "hi"); err != nil || got != "hi" {
				t.Fatalf("echo: %q %v", got, err)
			}
		}
		if n := p.server.readBuf.Load(); n > wire.SmallBuffer {
			t.Fatalf("server read buffer %d bytes after small calls, want at most %d", n, wire.SmallBuffer)
		}
	}
	large := func() {
		t.Helper()
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		r, err := p.client.Call(context.Background(), out("echo", nil, big))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Result(), big) {
			t.Fatal("1 MiB echo corrupted")
		}
		r.Release()
		if n := p.server.readBuf.Load(); n != int32(p.server.cfg.ReadBufferSize) {
			t.Fatalf("server read buffer %d bytes after a 1 MiB call, want the full %d", n, p.server.cfg.ReadBufferSize)
		}
	}
	small()
	large()
	small()
	large()
	small()
	burst(t, p.client, 64, 2000)
	small()
}

// After a burst, an idle connection comes down to its reader goroutine:
// the writers and the workers the burst started exit, and a burst after
// that is served as before.
func TestIdleConnectionHoldsOnlyItsReader(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	burst(t, p.client, 64, 100)
	if running("worker") == 0 {
		t.Fatal("a burst of 64 concurrent calls left no worker running: the test sees nothing")
	}
	limit := workerIdle + writerIdle + 2*time.Second
	if !pollUntil(limit, func() bool { return running("worker")+running("writeLoop") == 0 }) {
		t.Fatalf("%v after a burst: %d workers and %d writers still running, want 0", limit, running("worker"), running("writeLoop"))
	}
	if n := running("readLoop"); n != 2 {
		t.Fatalf("%d reader goroutines for one connection's two ends, want 2", n)
	}
	burst(t, p.client, 64, 100)
}
