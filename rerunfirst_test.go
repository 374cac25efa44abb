package arbor

import (
	"context"
	"sync/atomic"
	"testing"
)

// A server interceptor that runs the handler twice and returns the first
// run's response: the result's capability must be the one that run
// returned, not the later run's (whose table only is sent).
func TestInterceptorReturnsEarlierRunsCapability(t *testing.T) {
	ctx := ctx10(t)
	first := func(next CallFunc) CallFunc {
		return func(ctx context.Context, req *Request) (*Response, error) {
			r1, err := next(ctx, req)
			if err != nil {
				return nil, err
			}
			next(ctx, req) // a second run, say to compare; its answer is dropped
			return r1, nil
		}
	}
	var n atomic.Int32
	srv := NewServer(WithInterceptors(first))
	mustOK(t, Handle0(srv, "make", func(ctx context.Context) (*Service, error) {
		return holder("h", int(n.Add(1))), nil
	}))
	c, _ := serveCaps(t, srv)
	r, err := Call0[*Ref](ctx, c, "make")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v, err := Call0[int](ctx, r, "get")
	if err != nil || v != 1 {
		t.Fatalf("the capability the first run returned answers %d, %v; want 1 (the run whose result was sent)", v, err)
	}
}
