package arbor

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// Registrar is what functions register on: a *Server (functions callable
// by id) or a *Service (methods callable through a reference).
type Registrar interface {
	register(h *handler) error
}

// Service is an object whose methods peers call through a reference (a
// capability). Register methods with the same HandleN functions as server
// functions; return the service from a handler, or pass it as an argument,
// and the peer receives a *Ref to it. A service sent on a connection is
// exported there until the peer releases every reference to it or the
// connection closes. Calls made on one reference run in the order they
// were made.
type Service struct {
	name    string
	mu      sync.Mutex
	methods map[string]*handler
}

// NewService returns an empty service; name appears in errors.
func NewService(name string) *Service {
	return &Service{name: name, methods: make(map[string]*handler)}
}

func (s *Service) register(h *handler) error {
	if h.info.ID == "" {
		return status.New(InvalidArgument, "method name is empty")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.methods[h.info.ID]; dup {
		return status.Errorf(AlreadyExists, "method %q of %s is already registered", h.info.ID, s.name)
	}
	s.methods[h.info.ID] = h
	return nil
}

func (s *Service) method(name string) *handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.methods[name]
}

// Ref is a reference to a service the peer exported. Call its methods
// with CallRef0..CallRef2; Close (or dropping it) releases it.
type Ref struct {
	c      *conn.Conn
	id     uint64
	target string // "@<export>" or "@p<call>" (a promised capability)
	// promise keeps a promised capability's answer retained while the
	// reference lives.
	promise *promise
	err     error // why a PipelineRef of a failed promise is unusable
	// closed is allocated apart from the Ref so that the GC cleanup can
	// read it without keeping the Ref reachable.
	closed *atomic.Bool
}

// Close releases the reference; the peer frees the service once every
// reference to it is released.
func (r *Ref) Close() error {
	if r == nil || r.c == nil && r.promise == nil || !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	if r.promise != nil { // the answer holding the capability may go
		p := r.promise
		release := func() {
			if res, err := p.async.Result(); err == nil { // the capability itself too
				if ref, err := p.sharedRef(res); err == nil && ref != nil {
					ref.Close()
				}
			}
			p.async.Release()
		}
		select {
		case <-p.async.Done():
			release()
		default:
			go func() { <-p.async.Done(); release() }() // once it arrives (or the connection fails)
		}
		return nil
	}
	r.c.ReleaseExport(r.id, 1)
	return nil
}

type refState struct {
	c      *conn.Conn
	id     uint64
	closed *atomic.Bool
}

func newRef(c *conn.Conn, id uint64) *Ref {
	r := &Ref{c: c, id: id, target: "@" + strconv.FormatUint(id, 10), closed: new(atomic.Bool)}
	// A reference dropped without Close is released when collected.
	runtime.AddCleanup(r, func(s refState) {
		if s.closed.CompareAndSwap(false, true) {
			s.c.ReleaseExport(s.id, 1)
		}
	}, refState{c, id, r.closed})
	return r
}

// export is one service exported on a connection.
type export struct {
	svc  *Service
	refs int64 // references the peer holds
}

// sequencer runs the calls on one target (a reference) in arrival order.
// Every ticket is used exactly once (leave), even by calls that fail
// before running, so one bad call cannot stall the ones behind it.
type sequencer struct {
	mu   sync.Mutex
	cond *sync.Cond
	next uint64              // the ticket of the call to run next
	done map[uint64]struct{} // tickets that left out of turn
}

// enter waits for ticket's turn or for ctx to end.
func (q *sequencer) enter(ctx context.Context, ticket uint64) error {
	stop := context.AfterFunc(ctx, func() { q.mu.Lock(); q.cond.Broadcast(); q.mu.Unlock() })
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.next != ticket && ctx.Err() == nil {
		q.cond.Wait()
	}
	return ctx.Err()
}

// leave retires ticket, in turn or not, and lets the next one go.
func (q *sequencer) leave(ticket uint64) {
	q.mu.Lock()
	if ticket == q.next {
		q.next++
		for {
			if _, ok := q.done[q.next]; !ok {
				break
			}
			delete(q.done, q.next)
			q.next++
		}
	} else if ticket > q.next {
		q.done[ticket] = struct{}{}
	}
	q.cond.Broadcast()
	q.mu.Unlock()
}

// sequencerFor returns the sequencer of a capability call's target.
func sequencerFor(in *conn.Incoming) *sequencer {
	target := string(in.Function)
	if i := strings.IndexByte(target, '.'); i > 0 {
		target = target[:i]
	}
	t := capsOf(in.Conn)
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.seqs[target]
	if q == nil {
		q = &sequencer{next: 1, done: make(map[uint64]struct{})}
		q.cond = sync.NewCond(&q.mu)
		t.seqs[target] = q
	}
	return q
}

// serveCapabilityCall takes the call's turn on its target, substitutes
// promise arguments, and runs it; the turn is given up on every path.
func serveCapabilityCall(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	q, ticket := sequencerFor(in), conn.TicketFromContext(ctx)
	defer q.leave(ticket)
	if err := q.enter(ctx, ticket); err != nil {
		return nil, status.FromError(err)
	}
	if in.Pipelined {
		args, err := substitutePromises(ctx, in)
		if err != nil {
			return nil, err
		}
		in.Args, in.Pipelined = args, false
	}
	return serveCapability(ctx, in, out)
}

// capTable holds a connection's exports.
type capTable struct {
	mu      sync.Mutex
	next    uint64
	exports map[uint64]*export
	ids     map[*Service]uint64
	seqs    map[string]*sequencer // per call target ("@7", "@p12")
	limit   int
}

// DefaultMaxExports bounds the services exported on one connection.
const DefaultMaxExports = 10000

func capsOf(c *conn.Conn) *capTable {
	return c.Attachment(func() any {
		return &capTable{exports: make(map[uint64]*export), ids: make(map[*Service]uint64),
			seqs: make(map[string]*sequencer), limit: DefaultMaxExports}
	}).(*capTable)
}

// exportOn exports svc on c (once per connection) and counts one more
// reference held by the peer.
func exportOn(c *conn.Conn, svc *Service) (uint64, error) {
	t := capsOf(c)
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[svc]; ok {
		t.exports[id].refs++
		return id, nil
	}
	if len(t.exports) >= t.limit {
		return 0, status.Errorf(ResourceExhausted, "too many exported services on this connection (limit %d): the peer must release some", t.limit)
	}
	t.next++
	e := &export{svc: svc, refs: 1}
	t.exports[t.next] = e
	t.ids[svc] = t.next
	return t.next, nil
}

// Exports reports how many services are exported on c (for tests and
// introspection).
func exportsOn(c *conn.Conn) int {
	t := capsOf(c)
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.exports)
}

// releaseExport drops n of the peer's references to export id.
func releaseExport(c *conn.Conn, id uint64, n uint32) {
	t := capsOf(c)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.exports[id]
	if e == nil {
		return
	}
	if e.refs -= int64(n); e.refs <= 0 {
		delete(t.exports, id)
		delete(t.ids, e.svc)
	}
}

// capCall parses "@<export>.<method>" and "@p<call>.<method>" (a call on
// the capability a retained answer holds, before or after it resolves).
func capCall(fn []byte) (id uint64, promised bool, method string, ok bool) {
	s := string(fn)
	dot := strings.IndexByte(s, '.')
	if dot <= 1 {
		return 0, false, "", false
	}
	method = s[dot+1:]
	num := s[1:dot]
	if strings.HasPrefix(num, "p") {
		promised, num = true, num[1:]
	}
	id, err := strconv.ParseUint(num, 10, 64)
	return id, promised, method, err == nil
}

// serveCapability runs a call on an exported service (its turn taken by
// serveCapabilityCall).
func serveCapability(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	id, promised, method, ok := capCall(in.Function)
	if !ok {
		return nil, status.Errorf(InvalidArgument, "malformed capability call %q", in.Function)
	}
	t := capsOf(in.Conn)
	if promised { // the capability is in a retained answer: wait for it
		res, err := in.Conn.Answer(ctx, id)
		if err != nil {
			return nil, err
		}
		r := value.NewReader(res)
		eid, err := readExportID(&r)
		if err != nil {
			return nil, status.Wrap(InvalidArgument, nil, err, fmt.Sprintf("call %d did not return a capability", id))
		}
		id = eid
	}
	t.mu.Lock()
	e := t.exports[id]
	t.mu.Unlock()
	if e == nil {
		return nil, &Error{Code: NotFound, Category: status.ErrUnknownMethod, Message: fmt.Sprintf("capability %d is unknown or released", id)}
	}
	h := e.svc.method(method)
	if h == nil {
		return nil, &Error{Code: NotFound, Category: status.ErrUnknownMethod, Message: fmt.Sprintf("%s has no method %q", e.svc.name, method)}
	}
	if h.invoke == nil {
		return nil, status.Errorf(Unimplemented, "streaming methods on capabilities are not supported yet")
	}
	return h.invoke(ctx, in.Args, out)
}

// ---- encoding services and references ----

var (
	serviceType = reflect.TypeFor[*Service]()
	refType     = reflect.TypeFor[*Ref]()
)

// appendCapability encodes a service as a reference the peer can call,
// exporting it on c.
func appendCapability(b []byte, c *conn.Conn, svc *Service) ([]byte, error) {
	if svc == nil {
		return value.AppendNil(b), nil
	}
	id, err := exportOn(c, svc)
	if err != nil {
		return b, err
	}
	return value.AppendExt(b, wire.CapabilityExt, binary.AppendUvarint(nil, id)), nil
}

// readRef decodes a reference the peer sent on c.
func readRef(r *value.Reader, c *conn.Conn) (*Ref, error) {
	if r.ReadNil() {
		return nil, nil
	}
	id, err := readExportID(r)
	if err != nil {
		return nil, err
	}
	return newRef(c, id), nil
}

func readExportID(r *value.Reader) (uint64, error) {
	t, data, err := r.ReadExt()
	if err != nil {
		return 0, err
	}
	id, k := binary.Uvarint(data)
	if t != wire.CapabilityExt || k <= 0 || k != len(data) {
		return 0, fmt.Errorf("expected a capability reference, got extension type %d", t)
	}
	return id, nil
}

// decodeArg decodes handler argument i, turning capability references
// into *Ref bound to the call's connection.
func decodeArg[A any](ctx context.Context, h *handler, i int, ca *value.Codec[A], r *value.Reader) (A, error) {
	if reflect.TypeFor[A]() == refType {
		var zero A
		ref, err := readRef(r, conn.FromContext(ctx))
		if err != nil {
			return zero, h.argError(i, err)
		}
		return any(ref).(A), nil
	}
	a, err := ca.Decode(r)
	if err != nil {
		return a, h.argError(i, err)
	}
	return a, nil
}

// ---- calling methods on references ----

func (r *Ref) call(ctx context.Context, method string, args []byte) ([]byte, *conn.Reply, error) {
	if r != nil && r.err != nil {
		return nil, nil, r.err
	}
	if r == nil || r.c == nil || r.closed.Load() {
		return nil, nil, status.Errorf(FailedPrecondition, "call %q on a closed or nil reference", method)
	}
	rep, err := r.c.Call(ctx, r.target+"."+method, outgoingMetadata(ctx), args)
	if err != nil {
		return nil, nil, err
	}
	return rep.Result(), rep, nil
}

func finishRef[R any](ctx context.Context, r *Ref, method string, args []byte, err error) (R, error) {
	var zero R
	if err != nil {
		return zero, err
	}
	res, rep, err := r.call(ctx, method, args)
	if err != nil {
		return zero, err
	}
	defer rep.Release()
	return decodeResult[R](method, res, r.c)
}

// decodeResult decodes a result, binding capability references to c.
func decodeResult[R any](fn string, res []byte, c *conn.Conn) (R, error) {
	var zero R
	rd := value.NewReader(res)
	if reflect.TypeFor[R]() == refType {
		ref, err := readRef(&rd, c)
		if err != nil {
			return zero, status.Wrap(Internal, status.ErrSerialization, err, fn+": decoding the result as a reference")
		}
		return any(ref).(R), nil
	}
	v, err := value.For[R]().Decode(&rd)
	if err != nil {
		return zero, status.Wrap(Internal, status.ErrSerialization, err,
			fmt.Sprintf("%s: decoding the result as %s", fn, value.For[R]().TypeName()))
	}
	return v, nil
}

// appendRefArg encodes a method argument; a *Service is exported on the
// reference's connection so the peer can call back into it.
func appendRefArg[T any](b []byte, c *conn.Conn, method string, i int, v T, err error) ([]byte, error) {
	if err != nil {
		return b, err
	}
	if reflect.TypeFor[T]() == refType {
		return b, status.Errorf(Unimplemented, "%s: argument %d is a reference: passing a capability back to the side that exported it is not supported yet", method, i)
	}
	if reflect.TypeFor[T]() == serviceType {
		return appendCapability(b, c, any(v).(*Service))
	}
	return appendArg(b, method, i, v, nil)
}

// CallRef0 calls a method without arguments on a reference.
func CallRef0[R any](ctx context.Context, r *Ref, method string) (R, error) {
	return finishRef[R](ctx, r, method, value.AppendArrayHeader(nil, 0), nil)
}

// CallRef1 calls a method with one argument on a reference. A *Service
// argument is passed as a reference the peer can call back.
func CallRef1[R, A any](ctx context.Context, r *Ref, method string, a A) (R, error) {
	if r == nil {
		var zero R
		return zero, status.New(FailedPrecondition, "call on a nil reference")
	}
	b := value.AppendArrayHeader(nil, 1)
	b, err := appendRefArg(b, r.c, method, 0, a, nil)
	return finishRef[R](ctx, r, method, b, err)
}

// CallRef2 is CallRef1 with two arguments.
func CallRef2[R, A, B any](ctx context.Context, r *Ref, method string, a A, bb B) (R, error) {
	if r == nil {
		var zero R
		return zero, status.New(FailedPrecondition, "call on a nil reference")
	}
	b := value.AppendArrayHeader(nil, 2)
	b, err := appendRefArg(b, r.c, method, 0, a, nil)
	b, err = appendRefArg(b, r.c, method, 1, bb, err)
	return finishRef[R](ctx, r, method, b, err)
}

func isServiceType[T any]() bool { return reflect.TypeFor[T]() == serviceType }

// Release implements conn.Releaser: the peer dropped references to one of
// this side's exports.
func (s *Server) Release(c *conn.Conn, id uint64, n uint32) { releaseExport(c, id, n) }

// clientHandler serves the server's calls back into services the client
// passed to it.
type clientHandler struct{}

func (clientHandler) ServeCall(ctx context.Context, in *conn.Incoming, out []byte) ([]byte, error) {
	if len(in.Function) > 1 && in.Function[0] == '@' {
		return serveCapabilityCall(ctx, in, out)
	}
	return nil, status.Errorf(Unimplemented, "a client serves only calls on services it passed (got %q)", in.Function)
}

func (clientHandler) Release(c *conn.Conn, id uint64, n uint32) { releaseExport(c, id, n) }

// sharedRef decodes a promise's capability result once: every Wait and the
// PipelineRef share that one reference (the export is counted once).
func (p *promise) sharedRef(res []byte) (*Ref, error) {
	p.refOnce.Do(func() {
		rd := value.NewReader(res)
		p.ref, p.refErr = readRef(&rd, p.async.Conn())
		if p.materialized != nil && p.ref != nil {
			p.materialized.Store(true)
		}
	})
	return p.ref, p.refErr
}

// PipelineRef returns a reference to the capability that p's call will
// return, usable at once: calls on it are sent immediately and the server
// runs them when the capability exists (promise pipelining), in the order
// they were made. Close releases p's retained answer.
func PipelineRef(p *Promise[*Ref]) *Ref {
	if p.err != nil || p.async == nil {
		err := p.err
		if err == nil {
			err = status.New(FailedPrecondition, "the promise was never sent")
		}
		return &Ref{closed: new(atomic.Bool), err: err}
	}
	return &Ref{c: p.async.Conn(), target: "@p" + strconv.FormatUint(p.async.ID(), 10), promise: p.promise, closed: new(atomic.Bool)}
}

// GoRef0 calls a method on a reference without waiting.
func GoRef0[R any](ctx context.Context, r *Ref, method string) *Promise[R] {
	return goRef[R](ctx, r, method, value.AppendArrayHeader(nil, 0), nil)
}

// GoRef1 calls a method with one argument on a reference without waiting;
// the argument may be a promise or a *Service.
func GoRef1[R, A any](ctx context.Context, r *Ref, method string, a A) *Promise[R] {
	var e argEncoder
	b := value.AppendArrayHeader(nil, 1)
	b = appendRefPromisable(&e, b, r, method, 0, a)
	return goRef[R](ctx, r, method, b, &e)
}

// GoRef2 is GoRef1 with two arguments.
func GoRef2[R, A, B any](ctx context.Context, r *Ref, method string, a A, bb B) *Promise[R] {
	var e argEncoder
	b := value.AppendArrayHeader(nil, 2)
	b = appendRefPromisable(&e, b, r, method, 0, a)
	b = appendRefPromisable(&e, b, r, method, 1, bb)
	return goRef[R](ctx, r, method, b, &e)
}

func appendRefPromisable[T any](e *argEncoder, b []byte, r *Ref, method string, i int, v T) []byte {
	if e.err == nil && r != nil && r.c != nil && isServiceType[T]() {
		b, e.err = appendCapability(b, r.c, any(v).(*Service))
		return b
	}
	return appendPromisable(e, b, method, i, v)
}

func goRef[R any](ctx context.Context, r *Ref, method string, args []byte, e *argEncoder) *Promise[R] {
	fail := func(err error) *Promise[R] { return &Promise[R]{promise: &promise{fn: method, err: err}} }
	switch {
	case r != nil && r.err != nil:
		return fail(r.err)
	case r == nil || r.c == nil:
		return fail(status.Errorf(FailedPrecondition, "call %q on a nil reference", method))
	case r.closed.Load():
		return fail(status.Errorf(FailedPrecondition, "call %q on a closed reference", method))
	case e != nil && e.err != nil:
		return fail(e.err)
	case e != nil && e.cc != nil && e.cc != r.c:
		return fail(status.Errorf(FailedPrecondition, "%s: a promise argument belongs to another connection", method))
	}
	var deps []*promise
	pipelined := e != nil && e.pipelined
	if e != nil {
		deps = e.deps
	}
	if r.promise != nil { // a promised capability: its answer must outlive the call
		deps = append(deps, r.promise)
	}
	return newPromise[R](ctx, nil, r.target+"."+method, args, r.c, pipelined, deps)
}
