package arborotel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/conn"
)

// Observer returns the conn.Observer that traces every call crossing
// the wire, both ways; pass it to arbor.WithObserver on servers and
// clients.
func (t *Tracing) Observer() conn.Observer { return observer{t} }

type observer struct{ t *Tracing }

func (observer) ConnOpened(*conn.Conn)                   {}
func (observer) ConnClosed(*conn.Conn, error)            {}
func (observer) FlowStalled(*conn.Conn, time.Duration)   {}
func (observer) GoAway(*conn.Conn, bool, uint32, string) {}

func (o observer) CallStarted(ctx context.Context, info *conn.CallInfo) context.Context {
	attrs := func(name string) []attribute.KeyValue {
		return []attribute.KeyValue{AttrSystem.String("arbor"), AttrMethod.String(name), AttrKind.String(info.Kind.String())}
	}
	var span trace.Span
	if info.Outgoing {
		ctx, info.Metadata, span = o.t.outgoing(ctx, info.Function, info.Metadata, attrs)
	} else {
		ctx, span = o.t.incoming(ctx, info, false, info.Function, info.Metadata, attrs) // cloned if a span keeps it
	}
	var k any = noSpan{o.t}
	if span != nil && span.IsRecording() {
		k = span
	}
	// The span (or that there is none: most calls of an unsampled trace)
	// is kept for CallEnded, which then need not look for it in ctx. The
	// slot may hold another tracing observer's already (a combination
	// behind a wrapper numbers its slots from the first, sharing those of
	// the one around it): that one is left alone, and this one's travels
	// in the context, as it does past the Keep slots (an allocation).
	if !takenSlot(info.Kept(), o.t) {
		info.Keep(k)
		if info.Kept() != nil {
			return ctx
		}
	}
	return context.WithValue(ctx, ownKey{o.t}, k)
}

// noSpan is kept for a call for which t started no span that records:
// one pointer, kept without an allocation.
type noSpan struct{ t *Tracing }

// ownKey is the context key of what t keeps of a call whose Keep slot
// was not its own.
type ownKey struct{ t *Tracing }

// takenSlot reports whether v, kept for a call before t's observer saw
// it, is another tracing observer's: another Tracing's noSpan, or a span
// that records (t's own is not kept yet).
func takenSlot(v any, t *Tracing) bool {
	switch k := v.(type) {
	case noSpan:
		return k.t != t
	case trace.Span:
		return k.IsRecording()
	}
	return false
}

func (o observer) CallEnded(ctx context.Context, info *conn.CallInfo, err error) {
	var span trace.Span
	switch k := info.Kept().(type) {
	case noSpan:
		if k.t == o.t {
			return
		}
	case trace.Span:
		span = k // this observer's, unless the slot was another's (then this one's is in ctx)
	}
	switch v := ctx.Value(ownKey{o.t}).(type) {
	case noSpan:
		return
	case trace.Span:
		span = v
	default:
		if span == nil { // a value another observer kept over this one's
			span = trace.SpanFromContext(ctx)
		}
	}
	if info.Outgoing {
		end(span, err, info.ArgBytes, info.ResultBytes)
	} else {
		end(span, err, info.ResultBytes, info.ArgBytes)
	}
}

// ServerInterceptor traces the calls a server serves, in process ones
// (Server.Invoke) included. Use it instead of Observer on a server, not
// with it.
func (t *Tracing) ServerInterceptor() arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			ctx, span := t.incoming(ctx, nil, true, req.ID, req.Metadata, func(name string) []attribute.KeyValue {
				a := []attribute.KeyValue{AttrSystem.String("arbor"), AttrMethod.String(name), AttrKind.String(string(req.Kind))}
				if req.Service != "" {
					a = append(a, AttrService.String(req.Service))
				}
				return a
			})
			resp, err := next(ctx, req)
			var out int64
			if resp != nil {
				out = int64(len(resp.Result))
			}
			end(span, err, out, int64(len(req.Args)))
			return resp, err
		}
	}
}

// ClientInterceptor traces the calls a client (or any Caller it wraps)
// makes and puts the trace context in their metadata. Use it instead of
// Observer on a client, not with it. The span of a stream or an Async
// call (a promise) lasts until the stream ends or the answer arrives
// (Response.OnEnd); its result size is Observer's alone.
func (t *Tracing) ClientInterceptor() arbor.Interceptor {
	return func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			ctx, md, span := t.outgoing(ctx, req.ID, req.Metadata, func(name string) []attribute.KeyValue {
				return []attribute.KeyValue{AttrSystem.String("arbor"), AttrMethod.String(name), AttrKind.String(string(req.Kind))}
			})
			req.Metadata = md
			resp, err := next(ctx, req)
			out := int64(len(req.Args))
			if err == nil && resp != nil && (req.Async || req.Kind.IsStream()) {
				resp.OnEnd(func(err error) { end(span, err, out, 0) }) // the answer's arrival, the stream's end
				return resp, err
			}
			var in int64
			if resp != nil {
				in = int64(len(resp.Result))
			}
			end(span, err, out, in)
			return resp, err
		}
	}
}
