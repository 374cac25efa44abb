package cluster

// A member's connections going quiet for a while (a loaded machine, a
// collector's pause) without the member failing: distributed resolution
// rides it out instead of moving subtrees off their owners.

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

// stallProxy forwards TCP to a member's server and, while held, forwards
// nothing in either direction: the connections stay open but go silent,
// as a starved process's do.
type stallProxy struct {
	url  string
	mu   sync.Mutex
	gate chan struct{} // nil: forwarding; else closed by release
	done chan struct{}
}

// startStallProxy proxies to target (host:port) until the test ends.
func startStallProxy(t testing.TB, target string) *stallProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &stallProxy{url: "tcp://" + l.Addr().String(), done: make(chan struct{})}
	var (
		wg    sync.WaitGroup
		cmu   sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		close(p.done)
		l.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if !p.wait() {
					return
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, in, out)
			cmu.Unlock()
			wg.Add(2)
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return p
}

// hold stops forwarding until release.
func (p *stallProxy) hold() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *stallProxy) release() {
	p.mu.Lock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
	p.mu.Unlock()
}

// wait blocks while the proxy is held; false: the test is over.
func (p *stallProxy) wait() bool {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	if g == nil {
		return true
	}
	select {
	case <-g:
		return true
	case <-p.done:
		return false
	}
}

// A subtree in flight on a member whose connections go silent for 600 ms
// finishes there: the member's server keeps the distributor's connection
// (its keep-alive, DistributeKeepAlive, lets a member drop it only after
// 2 s of silence), so the subtree is not moved. With the cluster client's
// 100 ms heartbeats the member dropped the connection after 200 ms, and
// the engine moved the subtree (here there is nowhere else to go: the
// tree failed), which under load made leaves run twice and cached them
// away from their owners (TestDistributedTreeSpreadsAndRunsOnce).
func TestDistributedSubtreeSurvivesASilentConnection(t *testing.T) {
	var proxy *stallProxy
	var runs atomic.Int64
	started := make(chan struct{}, 1)
	gate := make(chan struct{})
	ws := startDistWorkers(t, 2, nil, nil, func(i int, w *distWorker) {
		if i != 1 {
			return
		}
		// Only d1 has hold+mem, and d1's RPC address is the proxy's.
		w.advertise = func(url string) string {
			proxy = startStallProxy(t, strings.TrimPrefix(url, "tcp://"))
			return proxy.url
		}
		must(t, arbor.Handle1(w.srv, "hold+mem", func(ctx context.Context, k int) (string, error) {
			runs.Add(1)
			started <- struct{}{}
			select {
			case <-gate:
				return w.name, nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}))
	})
	ctx := testContext(t)
	id, err := tree.Submit(ctx, ws[0].client, request.New("hold+mem", 1))
	must(t, err)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("hold+mem never started")
	}
	proxy.hold()
	time.Sleep(600 * time.Millisecond) // the silence
	proxy.release()
	close(gate)
	got, err := tree.Result[string](ctx, ws[0].client, id)
	if err != nil || got != "d1" {
		t.Fatalf("tree over a connection silent for 600 ms: %q, %v", got, err)
	}
	if m := ws[0].engine.Stats().Moves; m != 0 {
		t.Errorf("%d move(s): the member's connection was dropped", m)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("hold+mem ran %d times", n)
	}
}
