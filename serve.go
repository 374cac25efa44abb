package arbor

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// dispatcher serves the calls a connection receives: functions of a
// server's catalog (functions non-nil) and methods of the services this
// side exported, through interceptors. A server and a client (for the
// callbacks into services it passed) each have one.
type dispatcher struct {
	functions func(id []byte) *handler // nil: this side serves no functions
	chain     CallFunc                 // interceptors around final; nil without any
}

// ServeCall implements conn.Handler.
func (d *dispatcher) ServeCall(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	res, err := d.serve(ctx, in, out)
	return res, toStatus(err)
}

// Release implements conn.Releaser: the peer dropped references to one
// of this side's exports.
func (d *dispatcher) Release(c *conn.Conn, id uint64, n uint32) { releaseExport(c, id, n) }

func (d *dispatcher) serve(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	if in.HasTarget {
		return d.serveMethod(ctx, in, out)
	}
	if d.functions == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod,
			Message: fmt.Sprintf("a client serves only calls on services it passed (got %q)", in.Function)}
	}
	h := d.functions(in.Function)
	if h == nil && d.chain == nil {
		return nil, unknownFunction(string(in.Function))
	}
	args := in.Args
	if len(in.Promises) > 0 { // arguments that are promises: wait for their answers
		var err error
		if args, err = substitutePromises(ctx, in); err != nil {
			return nil, err
		}
	}
	return d.run(ctx, in, h, "", args, out)
}

// run runs h (a function, or a method of service) for an incoming call,
// through the interceptors.
func (d *dispatcher) run(ctx context.Context, in *conn.Incoming, h *handler, service string, args, out []byte) ([]byte, error) {
	if h == nil { // interceptors see unknown functions too (final refuses them)
		req := &Request{ID: string(in.Function), Kind: KindUnary, Metadata: Metadata(in.Metadata), Args: args, in: in}
		if p, ok := PeerFromContext(ctx); ok {
			req.Peer = p
		}
		_, err := d.chain(ctx, req)
		if err == nil {
			err = unknownFunction(req.ID)
		}
		return nil, err
	}
	if in.Stream != nil {
		if h.stream == nil {
			return nil, Errorf(InvalidArgument, "%s is a unary function; call it without a stream", h.info.ID)
		}
	} else if h.invoke == nil {
		return nil, Errorf(InvalidArgument, "%s is a %s function; open a stream to call it", h.info.ID, h.info.Kind)
	}
	if d.chain == nil {
		if in.Stream != nil {
			return h.stream(ctx, in, in.Stream, args, out)
		}
		return h.invoke(ctx, in, args, out)
	}
	req := &Request{ID: h.info.ID, Kind: h.info.Kind, Service: service, Metadata: Metadata(in.Metadata), Args: args, in: in, h: h}
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	if in.Stream != nil {
		req.Stream = in.Stream
	}
	resp, err := d.chain(ctx, req)
	if err != nil {
		return nil, err
	}
	return append(out, resp.Result...), nil
}

func unknownFunction(id string) error {
	return &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: "unknown function " + quote([]byte(id))}
}

// finalServe is the end of a server's interceptor chain: the handler.
func finalServe(ctx context.Context, req *Request) (*Response, error) {
	h := req.h
	if h == nil {
		if req.in == nil && req.ID != "" {
			return nil, Errorf(Internal, "%s: an interceptor made a new request instead of passing the one it got", req.ID)
		}
		return nil, unknownFunction(req.ID)
	}
	var res []byte
	var err error
	if req.Stream != nil {
		res, err = h.stream(ctx, req.in, req.Stream, req.Args, nil)
	} else {
		res, err = h.invoke(ctx, req.in, req.Args, nil)
	}
	if err != nil {
		return nil, err
	}
	return &Response{Result: res}, nil
}

// serveMethod serves a call on a capability: it takes the call's turn on
// its target (E-order), finds the service, and runs the method; the turn
// is given up on every path.
func (d *dispatcher) serveMethod(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	q := sequencerFor(in)
	if q == nil {
		return nil, Errorf(Unavailable, "connection closed")
	}
	defer q.leave(in.Ticket)
	if err := q.enter(ctx, in.Ticket); err != nil {
		return nil, asError(err)
	}
	svc, err := targetService(ctx, in)
	if err != nil {
		return nil, err
	}
	method := string(in.Function)
	args := in.Args
	if len(in.Promises) > 0 {
		if args, err = substitutePromises(ctx, in); err != nil {
			return nil, err
		}
	}
	if svc.forward != nil {
		return svc.serveForward(ctx, in, method, args, out)
	}
	h := svc.method(method)
	if h == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: fmt.Sprintf("%s has no method %q", svc.name, method)}
	}
	return d.run(ctx, in, h, svc.name, args, out)
}

// targetService finds the service a call is addressed to: an export, or
// the capability in a retained answer (waiting for it).
func targetService(ctx context.Context, in *conn.Incoming) (*Service, error) {
	id := in.Target.ID
	if in.Target.Kind == wire.TargetAnswer {
		res, caps, err := in.Conn.Answer(ctx, id)
		if err != nil {
			return nil, asError(err)
		}
		eid, err := capabilityIn(res, caps, in.Target.Path)
		if err != nil {
			return nil, Errorf(InvalidArgument, "call %d did not return a capability there: %v", id, err)
		}
		id = eid
	}
	svc := exportedService(in.Conn, id)
	if svc == nil {
		return nil, &Error{Code: NotFound, Category: ErrUnknownMethod, Message: fmt.Sprintf("capability %d is unknown or released", id)}
	}
	return svc, nil
}

// capabilityIn finds the export id of the capability at path in a result
// this side sent with capability table caps.
func capabilityIn(res []byte, caps []wire.CapDescriptor, path []byte) (uint64, error) {
	if len(path) > 0 {
		segs, err := wire.ParsePath(path)
		if err != nil {
			return 0, err
		}
		if res, err = value.Select(res, pathArgs(segs)); err != nil {
			return 0, err
		}
	}
	r := value.NewReader(res)
	t, data, err := r.ReadExt()
	if err != nil || t != wire.CapabilityExt {
		return 0, fmt.Errorf("the value is not a capability")
	}
	i, n := binary.Uvarint(data)
	if n <= 0 || n != len(data) || i >= uint64(len(caps)) || caps[i].Kind != wire.CapSenderHosted {
		return 0, fmt.Errorf("malformed capability")
	}
	return caps[i].ID, nil
}

func pathArgs(segs []wire.PathSegment) []any {
	out := make([]any, len(segs))
	for i, s := range segs {
		if s.IsIndex {
			out[i] = s.Index
		} else {
			out[i] = s.Key
		}
	}
	return out
}

// promiseFailed starts the message of an error that a promise argument
// passed on; a chain of them names the first failure once instead of
// nesting every link's message.
const promiseFailed = "promised call "

// substitutePromises replaces the promise placeholders among a call's
// arguments by the answers they name, waiting for those calls.
func substitutePromises(ctx context.Context, in *conn.Incoming) ([]byte, error) {
	fn := string(in.Function)
	r := value.NewReader(in.Args)
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, wrapErr(InvalidArgument, ErrSerialization, err, fn+": arguments must be a msgpack array")
	}
	out := value.AppendArrayHeader(make([]byte, 0, len(in.Args)+64), n)
	for i := 0; i < n; i++ {
		if r.PeekKind() != value.KindExt {
			raw, err := r.Skip()
			if err != nil {
				return nil, wrapErr(InvalidArgument, ErrSerialization, err, fmt.Sprintf("%s: argument %d", fn, i))
			}
			out = append(out, raw...)
			continue
		}
		start := r.Offset()
		t, data, err := r.ReadExt()
		if err != nil {
			return nil, wrapErr(InvalidArgument, ErrSerialization, err, fmt.Sprintf("%s: argument %d", fn, i))
		}
		if t != wire.PromiseExt {
			out = append(out, in.Args[start:r.Offset()]...) // a capability or other extension: as is
			continue
		}
		idx, k := binary.Uvarint(data)
		if k <= 0 || k != len(data) || idx >= uint64(len(in.Promises)) {
			return nil, Errorf(InvalidArgument, "%s: argument %d: promise index out of range (the call names %d)", fn, i, len(in.Promises))
		}
		ref := in.Promises[idx]
		if ref.ID >= in.ID {
			return nil, Errorf(InvalidArgument, "%s: argument %d refers to call %d, which is not an earlier call", fn, i, ref.ID)
		}
		res, caps, err := in.Conn.Answer(ctx, ref.ID)
		if err != nil {
			e := asError(err)
			msg := e.Message
			if !strings.HasPrefix(msg, promiseFailed) { // the first failure of the chain
				msg = fmt.Sprintf("%s%d failed: %s", promiseFailed, ref.ID, truncateText(msg, 300))
			}
			return nil, &Error{Code: e.Code, Category: e.Category, Retryable: e.Retryable, Message: msg, Cause: err}
		}
		if len(ref.Path) > 0 {
			segs, err := wire.ParsePath(ref.Path)
			if err == nil {
				res, err = value.Select(res, pathArgs(segs))
			}
			if err != nil {
				return nil, wrapErr(InvalidArgument, ErrSerialization, err, fmt.Sprintf("%s: argument %d (promise of call %d)", fn, i, ref.ID))
			}
		}
		if len(caps) > 0 && holdsCapability(res) {
			return nil, Errorf(Unimplemented, "%s: argument %d is a promised capability of this side: passing it as an argument before it resolves is not supported yet (Wait for it first)", fn, i)
		}
		out = append(out, res...)
	}
	if len(r.Rest()) > 0 {
		return nil, Errorf(InvalidArgument, "%s: %d byte(s) after the argument array", fn, len(r.Rest()))
	}
	return out, nil
}

// holdsCapability reports whether an encoded value has a capability in
// it.
func holdsCapability(b []byte) bool {
	found := false
	value.Walk(b, func(t int8) {
		if t == wire.CapabilityExt {
			found = true
		}
	})
	return found
}

// truncateText shortens text that may come from a peer for a message.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:n], len(s))
}
