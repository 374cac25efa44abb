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
	noInline  bool                     // WithoutInline
}

// ServeCall implements conn.Handler.
func (d *dispatcher) ServeCall(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	res, err := d.serve(ctx, in, out)
	if len(in.Caps) > 0 {
		// No handler took the capabilities the call passed (an unknown
		// function or method, a failed promise, an interceptor's refusal):
		// the peer counted a reference for each.
		releaseCaps(in)
	}
	return res, toStatus(err)
}

// ServeEarly implements conn.EarlyChecker: a call that arrived in 0-RTT
// data (which may be a replay) is served before the handshake completes
// only if its function is registered Idempotent.
func (d *dispatcher) ServeEarly(in *conn.Incoming) bool {
	if d.functions == nil {
		return false
	}
	h := d.functions(in.Function)
	return h != nil && h.info.Idempotent && h.invoke != nil
}

// InlineStat implements conn.Inliner: a unary function's calls run on
// the connection's reader once they have proven quick. The handler found
// is kept in in.Arrival for serve.
func (d *dispatcher) InlineStat(in *conn.Incoming) *conn.InlineStat {
	if d.functions == nil || d.noInline {
		return nil
	}
	h := d.functions(in.Function)
	if h == nil || h.invoke == nil {
		return nil
	}
	in.Arrival = h
	return &h.inline
}

// Release implements conn.Releaser: the peer dropped references to one
// of this side's exports.
func (d *dispatcher) Release(c *conn.Conn, id uint64, n uint32) { releaseExport(c, id, n) }

// Arrive implements conn.Arriver: on the reading goroutine, in arrival
// order, it marks the calls on a capability whose delivery will wait, so
// that the others behind them wait their turn and the rest go at once.
// A call delivered at arrival carries its service in in.Arrival and
// skips the sequencer on its worker.
func (d *dispatcher) Arrive(in *conn.Incoming) {
	q, svc := lookupTarget(in)
	switch {
	case q == nil:
	case !deliveredAtOnce(in, svc):
		q.markSlow(in.Ticket)
	case svc != nil && q.retireAtArrival(in.Ticket):
		in.Arrival = svc
	}
}

// deliveredAtOnce reports whether a call's delivery needs no wait: it is
// addressed to an export (not a promised answer), uses no promises, and
// the service neither runs one call at a time nor forwards to another
// connection (forwarding keeps the order by sending in turn).
func deliveredAtOnce(in *conn.Incoming, svc *Service) bool {
	if in.Target.Kind != wire.TargetExport || len(in.Promises) > 0 {
		return false
	}
	for _, c := range in.Caps {
		if c.Kind == wire.CapReceiverAnswer {
			return false
		}
	}
	return svc == nil || !svc.serialized.Load() && svc.forward == nil
}

// AnswerForgotten implements conn.AnswerForgetter: the sequencers of
// calls on promised capabilities in those answers go with them.
func (d *dispatcher) AnswerForgotten(c *conn.Conn, ids []uint64) {
	if t := capsOf(c); t != nil {
		t.forgetAnswers(ids)
	}
}

// Unpinned implements conn.Unpinner: exports kept for pipelined calls may
// go now.
func (d *dispatcher) Unpinned(c *conn.Conn) {
	if t := capsOf(c); t != nil {
		t.reap(c)
	}
}

func (d *dispatcher) serve(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	if in.HasTarget {
		return d.serveMethod(ctx, in, out)
	}
	if d.functions == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod,
			Message: fmt.Sprintf("a client serves only calls on services it passed (got %q)", in.Function)}
	}
	h, _ := in.Arrival.(*handler) // found by InlineStat
	if h == nil {
		h = d.functions(in.Function)
	}
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
	if err := resolveAnswerCaps(ctx, in); err != nil {
		return nil, err
	}
	return d.run(ctx, in, h, nil, args, out)
}

// run runs h (a function, or a method of svc) for an incoming call,
// through the interceptors: the server's, then the service's.
func (d *dispatcher) run(ctx context.Context, in *conn.Incoming, h *handler, svc *Service, args, out []byte) ([]byte, error) {
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
	var inner CallFunc
	service := ""
	if svc != nil {
		inner, service = svc.interceptors(), svc.name
	}
	if d.chain == nil && inner == nil {
		if in.Stream != nil {
			return h.stream(ctx, in, rawStream{in.Stream}, args, out)
		}
		// Nothing stands between the handler and the connection: it
		// may leave a blob result in in.ResultTail (interceptors must
		// see the whole result, so behind them it is encoded whole).
		in.TailOK = true
		return h.invoke(ctx, in, args, out)
	}
	rr := &runRequest{Request: Request{ID: h.info.ID, Kind: h.info.Kind, Service: service, Metadata: Metadata(in.Metadata), Args: args, in: in, h: h, inner: inner}}
	req := &rr.Request
	req.runs = &rr.runs
	if p, ok := PeerFromContext(ctx); ok {
		req.Peer = p
	}
	if in.Stream != nil {
		req.Stream = rawStream{in.Stream}
	}
	next := d.chain
	if next == nil {
		next = finalServe
	}
	var resp *Response
	var err error
	defer func() { rr.runs.settle(in, resp) }() // a panic too: no run's table is sent
	resp, err = next(ctx, req)
	if err != nil {
		resp = nil
		return nil, err
	}
	return append(out, resp.Result...), nil
}

// runRequest is a Request with its resultRuns, in one allocation.
type runRequest struct {
	Request
	runs resultRuns
}

// resultRuns are the capability tables of the results the runs of one
// call's handler exported: an interceptor may run the handler more than
// once (a retry) and return any run's response, or one of its own.
type resultRuns struct{ tables [][]wire.CapDescriptor }

// add records the table a run exported (its result's; nil: none).
func (rs *resultRuns) add(table []wire.CapDescriptor) {
	if len(table) > 0 {
		rs.tables = append(rs.tables, table)
	}
}

// settle gives in the table of the run whose response the chain returned
// (resp nil: it failed), and releases the others: the peer learns of
// that table only. A response an interceptor made itself keeps the last
// run's table, as a single run's would.
func (rs *resultRuns) settle(in *conn.Incoming, resp *Response) {
	if len(rs.tables) == 0 {
		return
	}
	chosen := -1
	if resp != nil {
		chosen = len(rs.tables) - 1
		if len(resp.caps) > 0 {
			for i, t := range rs.tables {
				if &t[0] == &resp.caps[0] {
					chosen = i
					break
				}
			}
		}
	}
	in.ResultCaps = nil
	if chosen >= 0 {
		in.ResultCaps = rs.tables[chosen]
	}
	for i, t := range rs.tables {
		if i != chosen {
			undoExports(in.Conn, t)
		}
	}
	rs.tables = nil
}

func unknownFunction(id string) error {
	return &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: "unknown function " + quote([]byte(id))}
}

// finalServe is the end of a server's interceptor chain: the service's
// interceptors, if any, then the handler.
func finalServe(ctx context.Context, req *Request) (*Response, error) {
	if req.inner != nil {
		return req.inner(ctx, req)
	}
	return invokeHandler(ctx, req)
}

// invokeHandler runs the request's handler.
func invokeHandler(ctx context.Context, req *Request) (*Response, error) {
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
	var table []wire.CapDescriptor
	if in := req.in; in != nil && req.runs != nil {
		// The run's table goes with its response: an interceptor that
		// calls next more than once picks which the peer gets, and the
		// others are released then (resultRuns.settle).
		table, in.ResultCaps = in.ResultCaps, nil
		req.runs.add(table)
	}
	if err != nil {
		return nil, err
	}
	return &Response{Result: res, caps: table}, nil
}

// serveMethod serves a call on a capability: it takes the call's turn on
// its target (E-order), finds the service, and runs the method; the turn
// is given up on every path.
func (d *dispatcher) serveMethod(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	if svc, ok := in.Arrival.(*Service); ok {
		// The common case, delivered at arrival: an export's method with
		// nothing to wait for.
		h := svc.methodBytes(in.Function)
		if h == nil {
			return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: fmt.Sprintf("%s has no method %q", svc.name, in.Function)}
		}
		return d.run(ctx, in, h, svc, in.Args, out)
	}
	q, svc := lookupTarget(in)
	if q == nil {
		return nil, Errorf(Unavailable, "connection closed")
	}
	if svc != nil && deliveredAtOnce(in, svc) && q.enterFast(in.Ticket) {
		// Nothing to wait for, and nothing ahead of it waits any more.
		method := string(in.Function)
		h := svc.method(method)
		if h == nil {
			return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: fmt.Sprintf("%s has no method %q", svc.name, method)}
		}
		return d.run(ctx, in, h, svc, in.Args, out)
	}
	// The turn is held until the call is delivered (its target found, its
	// promise arguments in, a serialized service's lock taken), not until
	// it ends: later calls start in order, then run concurrently.
	turn := true
	defer func() {
		if turn {
			q.leave(in.Ticket)
		}
	}()
	if q.enterFast(in.Ticket) {
		turn = false // delivered at once: nothing ahead of it waits
	} else if err := q.enter(ctx, in.Ticket); err != nil {
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
	if err := resolveAnswerCaps(ctx, in); err != nil {
		return nil, err
	}
	if svc.forward != nil {
		return svc.serveForward(ctx, in, method, args, out, func() {
			if turn {
				turn = false
				q.leave(in.Ticket)
			}
		})
	}
	h := svc.method(method)
	if h == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: fmt.Sprintf("%s has no method %q", svc.name, method)}
	}
	if svc.serialized.Load() {
		svc.serial.Lock()
		defer svc.serial.Unlock()
	}
	if turn {
		turn = false
		q.leave(in.Ticket) // delivered
	}
	return d.run(ctx, in, h, svc, args, out)
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
	if n <= 0 || n != len(data) {
		return 0, fmt.Errorf("malformed capability")
	}
	d, err := answerCap(caps, i)
	return d.ID, err
}

// answerCap returns entry i of the capability table of an answer this
// side sent, as the peer names it when it passes it back: one of this
// side's exports.
func answerCap(caps []wire.CapDescriptor, i uint64) (wire.CapDescriptor, error) {
	if i >= uint64(len(caps)) {
		return wire.CapDescriptor{}, fmt.Errorf("capability index %d out of range: the answer holds %d", i, len(caps))
	}
	if caps[i].Kind != wire.CapSenderHosted {
		return wire.CapDescriptor{}, fmt.Errorf("the capability is the caller's own, returned to it: pass the caller's reference instead of the promise")
	}
	return wire.CapDescriptor{Kind: wire.CapReceiverHosted, ID: caps[i].ID}, nil
}

// resolveAnswerCaps turns the promised capabilities a call passes back
// (CapReceiverAnswer: capabilities in answers of this side) into this
// side's exports, waiting for those answers.
func resolveAnswerCaps(ctx context.Context, in *conn.Incoming) error {
	for i, c := range in.Caps {
		if c.Kind != wire.CapReceiverAnswer {
			continue
		}
		if c.ID >= in.ID {
			return Errorf(InvalidArgument, "%s: capability %d refers to call %d, which is not an earlier call", in.Function, i, c.ID)
		}
		res, caps, err := in.Conn.Answer(ctx, c.ID)
		if err != nil {
			e := asError(err)
			return &Error{Code: e.Code, Category: e.Category, Message: fmt.Sprintf("%s: capability %d: %s%d failed: %s", in.Function, i, promiseFailed, c.ID, truncateText(e.Message, 300)), Cause: err}
		}
		eid, err := capabilityIn(res, caps, c.Path)
		if err != nil {
			return Errorf(InvalidArgument, "%s: capability %d: call %d did not return a capability there: %v", in.Function, i, c.ID, err)
		}
		in.Caps[i] = wire.CapDescriptor{Kind: wire.CapReceiverHosted, ID: eid}
	}
	return nil
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
			// The answer's capabilities are this side's exports: they join
			// the call's table, renumbered.
			out, err = value.RewriteExt(out, res, func(t int8, data []byte) ([]byte, error) {
				if t != wire.CapabilityExt {
					return nil, nil
				}
				j, k := binary.Uvarint(data)
				if k <= 0 || k != len(data) {
					return nil, fmt.Errorf("malformed capability")
				}
				d, err := answerCap(caps, j)
				if err != nil {
					return nil, err
				}
				if len(in.Caps) >= wire.MaxCaps {
					return nil, fmt.Errorf("more than %d capabilities", wire.MaxCaps)
				}
				in.Caps = append(in.Caps, d)
				return value.AppendExt(nil, wire.CapabilityExt, binary.AppendUvarint(nil, uint64(len(in.Caps)-1))), nil
			})
			if err != nil {
				return nil, Errorf(InvalidArgument, "%s: argument %d (promise of call %d): %v", fn, i, ref.ID, err)
			}
			continue
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
