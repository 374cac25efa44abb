package arbor

import "context"

// idempotentKey marks a context whose calls are idempotent.
type idempotentKey struct{}

// WithIdempotent returns a context under which this client's calls are
// declared idempotent: calling the function twice is the same as once.
// On a quic:// connection dialed with transport.Config.Allow0RTT and a
// session to resume, such a call may go in 0-RTT data, before the
// handshake completes; since an attacker can replay early data, every
// other call waits for the handshake. The server serves an early call at
// once only if its function is registered Idempotent (see Idempotent);
// other early calls wait there for the handshake too.
//
// Only plain unary calls (no target, promise or capability, within the
// 4 KiB frame every peer accepts) go early; the mark is ignored otherwise.
func WithIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// idempotentCall reports whether ctx carries WithIdempotent.
func idempotentCall(ctx context.Context) bool {
	v, _ := ctx.Value(idempotentKey{}).(bool)
	return v
}
