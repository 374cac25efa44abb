package conn

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// callCtx is a handler's context. It costs one allocation: its Done channel
// and deadline timer are made only if someone asks for Done, since most
// handlers never do; Err checks the clock itself.
type callCtx struct {
	conn     *Conn
	parent   context.Context
	deadline time.Time
	md       []wire.MD
	// One value an Observer bound to the call (CallInfo.WithValue): a
	// span, say, without the allocation of a context.WithValue.
	obKey, obVal any

	mu      sync.Mutex
	trailer []wire.MD
	// hasTrailer is set once trailer is not empty: most calls set none,
	// and reading them then takes no lock.
	hasTrailer atomic.Bool
	done       chan struct{}
	err        error
	timer      *time.Timer
}

func newCallCtx(parent context.Context, timeout time.Duration, md []wire.MD) *callCtx {
	c := &callCtx{parent: parent, md: md}
	if timeout > 0 {
		c.deadline = now().Add(timeout)
	}
	return c
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.deadline, !c.deadline.IsZero() }

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.checkDeadlineLocked() // before done exists, so it is closed once, below
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		} else if !c.deadline.IsZero() {
			c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
		}
	}
	return c.done
}

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkDeadlineLocked()
	return c.err
}

func (c *callCtx) checkDeadlineLocked() {
	if c.err == nil && !c.deadline.IsZero() && !now().Before(c.deadline) {
		c.err = context.DeadlineExceeded
		if c.done != nil {
			close(c.done)
		}
	}
}

type metadataKey struct{}

// MetadataKey is the context key under which a handler's context holds the
// call's metadata ([]wire.MD).
var MetadataKey any = metadataKey{}

type callCtxKey struct{}

type connKey struct{}

// FromContext returns the connection a handler's call arrived on.
func FromContext(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

func (c *callCtx) Value(key any) any {
	if c.obKey != nil && key == c.obKey {
		return c.obVal
	}
	switch key {
	case MetadataKey:
		return c.md
	case callCtxKey{}:
		return c
	case connKey{}:
		return c.conn
	}
	return c.parent.Value(key)
}

// SetTrailer adds trailers to the call whose handler context is ctx; they
// travel back with its result or error. It reports false outside a handler.
func SetTrailer(ctx context.Context, md ...wire.MD) bool {
	c, ok := ctx.Value(callCtxKey{}).(*callCtx)
	if !ok {
		return false
	}
	c.mu.Lock()
	c.trailer = append(c.trailer, md...)
	c.hasTrailer.Store(len(c.trailer) > 0)
	c.mu.Unlock()
	return true
}

func (c *callCtx) trailers() []wire.MD {
	if !c.hasTrailer.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trailer
}

type trailerKey struct{}

// WithTrailerSink returns a context whose calls store the callee's
// trailers in *dst when they arrive.
func WithTrailerSink(ctx context.Context, dst *[]wire.MD) context.Context {
	return context.WithValue(ctx, trailerKey{}, dst)
}

func sinkTrailer(ctx context.Context, md []wire.MD) {
	if dst, ok := ctx.Value(trailerKey{}).(*[]wire.MD); ok {
		*dst = md
	}
}

func (c *callCtx) cancel(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
}

func (c *callCtx) String() string { return "arbor.callContext" }
