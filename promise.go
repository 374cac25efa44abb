package arbor

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// Promise is the future result of a call sent with Go0..Go3. Pass it (or
// Field of it) as an argument to further Go or Call calls before it
// resolves: the server substitutes the result itself, so a chain of
// dependent calls costs one round trip. Dropping a promise unused cancels
// its call on the server; Release lets the server forget its answer.
type Promise[R any] struct {
	*promise
	path []any // a field path into the result (Field)
}

type promise struct {
	c     *Client
	async *conn.Async
	err   error // set when the call could not be sent
	fn    string

	refOnce      sync.Once    // sharedRef
	materialized *atomic.Bool // sharedRef made a *Ref (which releases itself)
	ref          *Ref
	refErr       error
	// deps are the promises this call's arguments reference: kept
	// reachable so that their answers are not released before this call
	// has used them.
	deps []*promise
}

// promiseRef is implemented by promises so that argument encoding can
// recognize them.
type promiseRef interface {
	ref() (*promise, []any)
}

func (p *Promise[R]) ref() (*promise, []any) { return p.promise, p.path }

var promiseRefType = reflect.TypeFor[promiseRef]()

var promiseTypes sync.Map // reflect.Type → bool

// isPromise reports whether T is a promise type (cached per type).
func isPromise[T any]() bool {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Pointer { // promises are *Promise[R]: plain arguments skip the lookup
		return false
	}
	if v, ok := promiseTypes.Load(t); ok {
		return v.(bool)
	}
	is := t.Implements(promiseRefType)
	promiseTypes.Store(t, is)
	return is
}

// appendPromiseRef encodes a promise argument as a msgpack extension the
// server resolves. It returns the promise's connection, which the call
// must use.
func appendPromiseRef(b []byte, r promiseRef) ([]byte, *conn.Conn, error) {
	p, path := r.ref()
	if p.err != nil {
		return b, nil, p.err
	}
	var data []byte
	data = binary.AppendUvarint(data, p.async.ID())
	data = value.AppendArrayHeader(data, len(path))
	for _, seg := range path {
		var err error
		if data, err = value.AppendAny(data, seg); err != nil {
			return b, nil, err
		}
	}
	return value.AppendExt(b, wire.PromiseExt, data), p.async.Conn(), nil
}

// newPromise sends fn with the encoded args (whose promise references, if
// any, all point into cc and are deps) and returns its promise.
func newPromise[R any](ctx context.Context, c *Client, fn string, args []byte, cc *conn.Conn, pipelined bool, deps []*promise) *Promise[R] {
	p := &promise{c: c, fn: fn, deps: deps, materialized: new(atomic.Bool)}
	if cc == nil {
		var err error
		if cc, err = c.conn(ctx); err != nil {
			p.err = err
			return &Promise[R]{promise: p}
		}
	}
	a, err := cc.Go(ctx, fn, outgoingMetadata(ctx), args, true, pipelined)
	if err != nil {
		p.err = err
		return &Promise[R]{promise: p}
	}
	p.async = a
	pr := &Promise[R]{promise: p}
	// A promise dropped unused cancels its call; any dropped promise lets
	// the server forget its answer. The cleanup is on the shared state, so
	// Field promises and dependent calls keep the answer alive.
	runtime.AddCleanup(p, func(s cleanupState) {
		select {
		case <-s.a.Done():
			// A capability result nobody turned into a *Ref is still
			// counted by the server: release it.
			if res, err := s.a.Result(); err == nil && !s.materialized.Load() {
				rd := value.NewReader(res)
				if id, err := readExportID(&rd); err == nil {
					s.a.Conn().ReleaseExport(id, 1)
				}
			}
		default:
			s.a.Cancel()
		}
		s.a.Release()
	}, cleanupState{a, p.materialized})
	return pr
}

// Wait waits for the result. For a Field promise it returns that field.
func (p *Promise[R]) Wait() (R, error) {
	var zero R
	if p.err != nil {
		return zero, p.err
	}
	res, err := p.async.Result()
	if err != nil {
		return zero, err
	}
	if len(p.path) > 0 {
		if res, err = value.Select(res, p.path); err != nil {
			return zero, status.Wrap(InvalidArgument, status.ErrSerialization, err, p.fn+": result field")
		}
	}
	if reflect.TypeFor[R]() == refType && len(p.path) == 0 {
		ref, err := p.sharedRef(res)
		if err != nil {
			return zero, status.Wrap(Internal, status.ErrSerialization, err, p.fn+": decoding the result as a reference")
		}
		return any(ref).(R), nil
	}
	return decodeResult[R](p.fn, res, p.async.Conn())
}

// Release tells the server it may forget the answer; the promise must not
// be used as an argument afterwards (Wait still works).
func (p *Promise[R]) Release() {
	if p.async != nil {
		p.async.Release()
	}
}

// Cancel abandons the call if it has not finished.
func (p *Promise[R]) Cancel() {
	if p.async != nil {
		p.async.Cancel()
	}
}

// Field returns a promise for one field of p's future result: a map key or
// struct field name (string) or an array index (int), nested in order.
// Use it as an argument before p resolves, or Wait on it.
func Field[T, R any](p *Promise[R], path ...any) *Promise[T] {
	full := append(append([]any(nil), p.path...), path...)
	return &Promise[T]{promise: p.promise, path: full}
}

// Go0 sends a call to fn without waiting and returns its promise.
func Go0[R any](ctx context.Context, c *Client, fn string) *Promise[R] {
	return newPromise[R](ctx, c, fn, value.AppendArrayHeader(nil, 0), nil, false, nil)
}

// Go1 sends a call to fn with one argument (a value or a promise) without
// waiting and returns its promise.
func Go1[R, A any](ctx context.Context, c *Client, fn string, a A) *Promise[R] {
	var e argEncoder
	b := value.AppendArrayHeader(nil, 1)
	b = appendPromisable(&e, b, fn, 0, a)
	return sendPromise[R](&e, ctx, c, fn, b)
}

// Go2 is Go1 with two arguments.
func Go2[R, A, B any](ctx context.Context, c *Client, fn string, a A, b B) *Promise[R] {
	var e argEncoder
	p := value.AppendArrayHeader(nil, 2)
	p = appendPromisable(&e, p, fn, 0, a)
	p = appendPromisable(&e, p, fn, 1, b)
	return sendPromise[R](&e, ctx, c, fn, p)
}

// Go3 is Go1 with three arguments.
func Go3[R, A, B, C any](ctx context.Context, c *Client, fn string, a A, b B, cc C) *Promise[R] {
	var e argEncoder
	p := value.AppendArrayHeader(nil, 3)
	p = appendPromisable(&e, p, fn, 0, a)
	p = appendPromisable(&e, p, fn, 1, b)
	p = appendPromisable(&e, p, fn, 2, cc)
	return sendPromise[R](&e, ctx, c, fn, p)
}

// argEncoder collects what encoding promise arguments learns: the
// connection they tie the call to, and the first error.
type argEncoder struct {
	cc        *conn.Conn
	pipelined bool
	deps      []*promise
	err       error
}

func appendPromisable[T any](e *argEncoder, b []byte, fn string, i int, v T) []byte {
	if e.err != nil {
		return b
	}
	if isPromise[T]() {
		r := any(v).(promiseRef)
		b2, cc, err := appendPromiseRef(b, r)
		switch {
		case err != nil:
			e.err = status.Wrap(status.CodeOf(err), nil, err, fmt.Sprintf("%s: argument %d is a failed promise", fn, i))
		case e.cc != nil && cc != e.cc:
			e.err = status.Errorf(FailedPrecondition, "%s: argument %d is a promise of another connection", fn, i)
		default:
			e.cc, e.pipelined = cc, true
			dep, _ := r.ref()
			e.deps = append(e.deps, dep)
		}
		return b2
	}
	b, e.err = appendArg(b, fn, i, v, nil)
	return b
}

func sendPromise[R any](e *argEncoder, ctx context.Context, c *Client, fn string, args []byte) *Promise[R] {
	if e.err != nil {
		return &Promise[R]{promise: &promise{c: c, fn: fn, err: e.err}}
	}
	return newPromise[R](ctx, c, fn, args, e.cc, e.pipelined, e.deps)
}

// substitutePromises replaces the promise references among a pipelined
// call's arguments by the results they name, waiting for those calls.
func substitutePromises(ctx context.Context, in *conn.Incoming) ([]byte, error) {
	fn := string(in.Function)
	r := value.NewReader(in.Args)
	n, err := r.ReadArrayHeader()
	if err != nil {
		return nil, status.Wrap(InvalidArgument, status.ErrSerialization, err, fn+": arguments must be a msgpack array")
	}
	out := value.AppendArrayHeader(make([]byte, 0, len(in.Args)+64), n)
	for i := 0; i < n; i++ {
		if r.PeekKind() != value.KindExt {
			raw, err := r.Skip()
			if err != nil {
				return nil, status.Wrap(InvalidArgument, status.ErrSerialization, err, fmt.Sprintf("%s: argument %d", fn, i))
			}
			out = append(out, raw...)
			continue
		}
		t, data, err := r.ReadExt()
		if err != nil || t != wire.PromiseExt {
			return nil, status.Errorf(InvalidArgument, "%s: argument %d is a msgpack extension of type %d, not a promise", fn, i, t)
		}
		id, k := binary.Uvarint(data)
		if k <= 0 {
			return nil, status.Errorf(InvalidArgument, "%s: argument %d: malformed promise reference", fn, i)
		}
		pr := value.NewReader(data[k:])
		pathV, err := pr.ReadAny()
		path, ok := pathV.([]any)
		if err != nil || !ok {
			return nil, status.Errorf(InvalidArgument, "%s: argument %d: malformed promise path", fn, i)
		}
		if id >= in.ID {
			return nil, status.Errorf(InvalidArgument, "%s: argument %d refers to call %d, which is not an earlier call", fn, i, id)
		}
		res, err := in.Conn.Answer(ctx, id)
		if err != nil {
			se := status.FromError(err)
			return nil, &Error{Code: se.Code, Category: se.Category, Retryable: se.Retryable,
				Message: fmt.Sprintf("%s: argument %d (promise of call %d): %s", fn, i, id, se.Message), Cause: err}
		}
		if len(path) > 0 {
			if res, err = value.Select(res, path); err != nil {
				return nil, status.Wrap(InvalidArgument, status.ErrSerialization, err, fmt.Sprintf("%s: argument %d (promise of call %d)", fn, i, id))
			}
		}
		if vr := value.NewReader(res); vr.PeekKind() == value.KindExt {
			// The answer is one of this side's own capabilities: as an
			// argument it would read as the caller's export of that number.
			return nil, status.Errorf(Unimplemented, "%s: argument %d is a promised capability of this server: passing a capability back to its exporter is not supported yet", fn, i)
		}
		out = append(out, res...)
	}
	return out, nil
}

// cleanupState is what a promise's GC cleanup needs, apart from the
// promise itself (which must be unreachable for the cleanup to run).
type cleanupState struct {
	a            *conn.Async
	materialized *atomic.Bool
}
