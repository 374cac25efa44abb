package arbor

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// Promises released before their answer hold no goroutine each while a
// slow or silent peer has not answered: the release waits on a hook the
// answer (or the connection's end) runs.
func TestReleasedPromisesHoldNoGoroutine(t *testing.T) {
	read := make(chan struct{}, 1024)
	addr := framePeer(t, func(_ net.Conn, h wire.Header) {
		if h.Type == wire.TypeCall {
			read <- struct{}{}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 300
	for range 10 { // warm up: the connection's own goroutines start
		Go1[int](ctx, c, "never", 1).Release()
		<-read
	}
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := range n {
		Go1[int](ctx, c, "never", i).Release()
	}
	for range n {
		<-read // the peer has every call: none was answered
	}
	time.Sleep(50 * time.Millisecond)
	if grew := runtime.NumGoroutine() - before; grew > n/10 {
		t.Errorf("%d promises released before their answer left %d more goroutines", n, grew)
	}
}
