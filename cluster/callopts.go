package cluster

import "context"

// Per-call options travel in the call's context, so they work with every
// typed helper (arbor.Call1(ctx, client, ...)) unchanged.

type callOptsKey struct{}

type callOpts struct {
	filter     Filter
	hasFilter  bool
	balancer   Balancer
	key        string
	idempotent bool
	member     string // a named member: no choice, no failover
}

func optsOf(ctx context.Context) callOpts {
	o, _ := ctx.Value(callOptsKey{}).(callOpts)
	return o
}

func with(ctx context.Context, f func(*callOpts)) context.Context {
	o := optsOf(ctx)
	f(&o)
	return context.WithValue(ctx, callOptsKey{}, o)
}

// WithFilter returns a context whose calls go only to members matching f,
// in addition to the client's own filter.
func WithFilter(ctx context.Context, f Filter) context.Context {
	return with(ctx, func(o *callOpts) { o.filter, o.hasFilter = f, true })
}

// WithTags is WithFilter with a filter in ParseFilter's syntax
// ("role=worker,zone=a"); a malformed filter makes the calls fail with
// InvalidArgument naming it.
func WithTags(ctx context.Context, filter string) context.Context {
	f, err := ParseFilter(filter)
	if err != nil {
		f = Filter{bad: err.Error()}
	}
	return WithFilter(ctx, f)
}

// WithBalancer returns a context whose calls choose members with b.
func WithBalancer(ctx context.Context, b Balancer) context.Context {
	return with(ctx, func(o *callOpts) { o.balancer = b })
}

// WithKey returns a context whose calls choose members by rendezvous
// hashing of key (the same key always reaches the same member while the
// membership holds; adding or removing a member moves 1/N of the keys).
func WithKey(ctx context.Context, key string) context.Context {
	return with(ctx, func(o *callOpts) { o.key, o.balancer = key, Rendezvous{} })
}

// WithIdempotent returns a context whose calls may be retried after their
// member died mid-call, and hedged, whatever the catalog says.
func WithIdempotent(ctx context.Context) context.Context {
	return with(ctx, func(o *callOpts) { o.idempotent = true })
}

// WithMember returns a context whose calls go to the named member only:
// no balancing, no failover.
func WithMember(ctx context.Context, name string) context.Context {
	return with(ctx, func(o *callOpts) { o.member = name })
}
