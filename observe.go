package arbor

import "github.com/arbor-rpc/arbor/conn"

// WithObserver adds observers of every connection this side makes or
// accepts and of every call on them, both ways: unary calls, promises,
// calls on references and streams, as they cross the wire (calls run in
// process with Server.Invoke do not). It is the hook that metrics and
// tracing use (packages metrics and otel): unlike an interceptor, an
// observer costs no allocation of its own, so the typed helpers keep
// their fast path.
func WithObserver(obs ...conn.Observer) Option {
	return bothOption(func(c *common) {
		c.observer = conn.Observers(append([]conn.Observer{c.observer}, obs...)...)
	})
}
