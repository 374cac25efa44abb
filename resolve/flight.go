package resolve

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/request"
)

// flightGroup runs one function per key at a time; callers with the same
// key while it runs wait for its result (a singleflight). The work runs in
// a goroutine of its own, under a context that keeps the first caller's
// values but is cancelled only when every caller waiting for it has gone,
// so a caller that gives up returns at once without failing the others.
type flightGroup struct {
	mu    sync.Mutex
	m     map[request.Key]*flight
	wg    sync.WaitGroup // running flights
	joins atomic.Int64   // callers that joined a run in flight
}

type flight struct {
	done    chan struct{}
	res     []byte
	err     error
	waiters int // callers still waiting; guarded by flightGroup.mu
	cancel  context.CancelFunc
	path    *request.Path // where the caller that started it has the request
}

// do returns fn's result for key, running it unless a run for key is
// already in flight; joined reports that the caller joined one, started
// by a caller that has the request at from (path is this caller's).
func (g *flightGroup) do(ctx context.Context, key request.Key, path *request.Path, fn func(context.Context) ([]byte, error)) (res []byte, err error, joined bool, from *request.Path) {
	g.mu.Lock()
	if f, ok := g.m[key]; ok {
		f.waiters++
		g.mu.Unlock()
		g.joins.Add(1)
		res, err := g.wait(ctx, key, f)
		return res, err, true, f.path
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	f := &flight{done: make(chan struct{}), waiters: 1, cancel: cancel, path: path}
	g.m[key] = f
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		f.res, f.err = fn(fctx)
		g.mu.Lock()
		if g.m[key] == f {
			delete(g.m, key)
		}
		g.mu.Unlock()
		cancel()
		close(f.done)
	}()
	res, err = g.wait(ctx, key, f)
	return res, err, false, path
}

func (g *flightGroup) wait(ctx context.Context, key request.Key, f *flight) ([]byte, error) {
	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	f.waiters--
	if f.waiters == 0 {
		// Nobody wants it any more: stop it, and let the next caller
		// start afresh rather than join a run being cancelled.
		f.cancel()
		if g.m[key] == f {
			delete(g.m, key)
		}
	}
	g.mu.Unlock()
	select {
	case <-f.done: // finished meanwhile: use it
		return f.res, f.err
	default:
	}
	return nil, errAbandoned
}

// errAbandoned is what a waiter gets when its context ended before the
// run it waited for: the engine names the node and the context's error
// (Engine.shared).
var errAbandoned = errors.New("resolve: waiter left before the run finished")

// waitAll blocks until no flight is running.
func (g *flightGroup) waitAll() { g.wg.Wait() }
