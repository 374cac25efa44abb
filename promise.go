package arbor

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// Promise is the future result of a call sent with Go0..Go3. Pass it (or
// Field of it) as an argument to further calls on the same Caller before
// it resolves: the server substitutes the result itself, so a chain of
// dependent calls costs one round trip. PipelineRef turns a promise of a
// capability into a reference that takes calls at once.
//
// Lifetime: the call runs to completion whatever happens to the promise
// (a fire-and-forget Go1 completes); only its context or Cancel stop it.
// The server keeps the answer for calls pipelined on it until Wait has
// returned it (and no PipelineRef needs it) or Release is called; an
// answer holding capabilities is kept after Wait too (calls passing the
// promise on must name the answer, not copy it): Release it when done. A
// promise dropped without either is released when the garbage collector
// finds it, with a warning in the client's log: a safety net, not the way
// to do it.
type Promise[R any] struct {
	*promise
	path []any // a field path into the result (Field)
}

type promise struct {
	id    string  // the function called, for messages
	via   Caller  // what it was sent through (Request.Bound)
	owner *Client // whose interceptors references in the result use
	cc    *conn.Conn
	async *conn.Async
	err   error        // why the call could not be sent
	depth int          // the length of the promise chain this call ends
	local *localResult // set for an in-process call (a capability passed back to its exporter)

	mu      sync.Mutex
	users   int  // calls being sent that name the answer
	wantRel bool // release once users is zero

	pipelined atomic.Bool  // a PipelineRef names the answer: Wait does not release it
	pipeRefs  atomic.Int64 // open PipelineRefs (and their duplicates) on the answer
	decOnce   sync.Once
	dec       *capDecoder // the result's capabilities, decoded once for every Wait
	rel       *promiseRelease
}

// promiseRelease releases a retained answer once; the GC cleanup holds it
// apart from the promise. The capabilities of the answer that no Wait
// decoded are released with it: the peer counted a reference for each.
type promiseRelease struct {
	done   atomic.Bool
	async  *conn.Async
	id     string
	logger *slog.Logger

	local *localResult // an in-process call's capabilities

	mu      sync.Mutex
	dec     *capDecoder // the result's capabilities, once a Wait decoded them
	dropped bool        // released: a later decoder must release its table at once
}

// localResult holds the capabilities an in-process call returned, filled
// in before its Async completes.
type localResult struct{ refs []*Ref }

func (r *promiseRelease) release() {
	if !r.done.CompareAndSwap(false, true) {
		return
	}
	r.async.Release()
	// When the answer comes or the connection fails (at once if it has):
	// a hook, not a goroutine waiting for it, so that promises released
	// before a slow or silent peer answers hold no goroutine each.
	afterAnswer(r.async, r.dropCaps)
}

// afterAnswer runs fn once a's answer is in: at once if it is, else on
// a goroutine of its own started by the call's completion hook. The hook
// runs on whatever completes the call (the connection's reader, a
// GOAWAY, the closer), which must not wait for room in the write queue
// (the RELEASE frames fn sends) nor run Ref.Close callbacks; the
// goroutine lives from the answer until fn has sent them, not while the
// answer is awaited.
func afterAnswer(a *conn.Async, fn func()) {
	select {
	case <-a.Done():
		fn()
	default:
		a.OnDone(func(error) { go fn() })
	}
}

// dropCaps releases the answer's capabilities that no Wait took.
func (r *promiseRelease) dropCaps() {
	r.mu.Lock()
	d := r.dec
	if d == nil {
		r.dropped = true
		if r.local != nil {
			if len(r.local.refs) > 0 {
				d = localDecoder(r.local.refs)
			}
		} else if caps := r.async.Caps(); len(caps) > 0 {
			d = &capDecoder{cc: r.async.Conn(), table: caps}
		}
	}
	r.mu.Unlock()
	if d != nil {
		d.releaseUnused()
	}
}

// promiseArg is implemented by promises so that argument encoding can
// recognize them.
type promiseArg interface {
	promised() (*promise, []any)
}

func (p *Promise[R]) promised() (*promise, []any) {
	if p == nil {
		return nil, nil
	}
	return p.promise, p.path
}

// newPromise makes the promise of an asynchronous call's response.
func newPromise[R any](id string, via Caller, resp *Response, owner *Client) *Promise[R] {
	if resp.async == nil {
		return failedPromise[R](id, Errorf(Unimplemented, "%s: the Caller did not send the call asynchronously (an interceptor answered it?); promises need the connection's answer", id))
	}
	p := &promise{id: id, via: via, owner: owner, cc: resp.cc, async: resp.async, local: resp.localRes}
	p.rel = &promiseRelease{async: resp.async, id: id, logger: loggerOf(owner), local: resp.localRes}
	runtime.AddCleanup(p, func(r *promiseRelease) {
		if !r.done.Load() {
			r.logger.Warn("arbor: a promise was garbage-collected without Wait or Release; releasing its answer", "function", r.id)
			r.release()
		}
	}, p.rel)
	return &Promise[R]{promise: p}
}

func failedPromise[R any](id string, err error) *Promise[R] {
	return &Promise[R]{promise: &promise{id: id, err: err}}
}

// Wait waits for the result and decodes it (for a Field promise, that
// field). After the first Wait the server may forget the answer: later
// calls that use the promise as an argument send its value.
func (p *Promise[R]) Wait() (R, error) {
	var zero R
	if p == nil || p.promise == nil {
		return zero, Errorf(FailedPrecondition, "Wait on a nil promise")
	}
	if p.err != nil {
		return zero, p.err
	}
	res, err := p.async.Result()
	p.async.Forget() // answered: its context no longer matters
	if err != nil {
		p.settled(false)
		return zero, fromStatus(err)
	}
	dec := p.decoder(p.async.Caps())
	if len(p.path) > 0 {
		if res, err = value.Select(res, p.path); err != nil {
			p.settled(dec != nil) // answered: released as after any Wait
			return zero, wrapErr(InvalidArgument, ErrSerialization, err, p.id+": result field")
		}
	}
	v, err := decodeResult[R](p.id, res, dec)
	p.settled(dec != nil)
	return v, err
}

// decoder returns the decoder of the result's capabilities, made once so
// that every Wait gets the same references.
func (p *promise) decoder(caps []wire.CapDescriptor) *capDecoder {
	if len(caps) == 0 && (p.local == nil || len(p.local.refs) == 0) {
		return nil
	}
	p.decOnce.Do(func() {
		if p.local != nil {
			p.dec = localDecoder(p.local.refs)
		} else {
			p.dec = &capDecoder{cc: p.cc, table: caps, owner: p.owner}
		}
		p.rel.mu.Lock()
		if p.rel.dropped { // released before this Wait: the references are gone
			p.dec.table, p.dec.refs, p.dec.taken = nil, nil, nil
		}
		p.rel.dec = p.dec
		p.rel.mu.Unlock()
	})
	return p.dec
}

// settled releases the answer after Wait unless it is still needed: by a
// PipelineRef, or because it holds capabilities (calls using it as an
// argument must name the answer then, not copy it).
func (p *promise) settled(holdsCaps bool) {
	if p.pipelined.Load() || holdsCaps {
		return
	}
	p.mu.Lock()
	p.wantRel = true
	now := p.users == 0
	p.mu.Unlock()
	if now {
		p.rel.release()
	}
}

// Release tells the server it may forget the answer; the promise must not
// be used as an argument afterwards (Wait still works). A promise that
// holds capabilities no Wait took releases them too.
func (p *Promise[R]) Release() {
	if p == nil || p.promise == nil || p.async == nil {
		return
	}
	p.mu.Lock()
	p.wantRel = true
	now := p.users == 0
	p.mu.Unlock()
	if now {
		p.rel.release()
	}
}

// retain counts one more open reference pipelined on the answer.
func (p *promise) retain() { p.pipeRefs.Add(1) }

// releaseWhenDone drops a reference pipelined on the answer; the last one
// releases the answer once it has arrived (it may close before its
// capability resolved).
func (p *promise) releaseWhenDone() {
	if p.async == nil || p.pipeRefs.Add(-1) > 0 {
		return
	}
	afterAnswer(p.async, p.rel.release)
}

// Cancel abandons the call if it has not finished: the server's handler
// sees its context cancelled, and Wait returns Canceled.
func (p *Promise[R]) Cancel() {
	if p != nil && p.promise != nil && p.async != nil {
		p.async.Cancel()
	}
}

// Field returns a promise for one field of p's future result: a map key or
// struct field name (string) or an array index (int), nested in order.
// Use it as an argument before p resolves, or Wait on it.
func Field[T, R any](p *Promise[R], path ...any) *Promise[T] {
	if p == nil {
		return failedPromise[T]("", Errorf(FailedPrecondition, "Field of a nil promise"))
	}
	full := append(append([]any(nil), p.path...), path...)
	return &Promise[T]{promise: p.promise, path: full}
}

// use marks a call about to be sent that names the answer; it reports
// false when the answer was released (the caller sends the value).
func (p *promise) use() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wantRel || p.rel.done.Load() {
		return false
	}
	p.users++
	return true
}

// used ends a use; a release wanted meanwhile happens now.
func (p *promise) used() {
	p.mu.Lock()
	p.users--
	now := p.users == 0 && p.wantRel
	p.mu.Unlock()
	if now {
		p.rel.release()
	}
}

// encodePath encodes a Field path for the wire.
func encodePath(path []any) []byte {
	if len(path) == 0 {
		return nil
	}
	segs := make([]wire.PathSegment, len(path))
	for i, s := range path {
		switch x := s.(type) {
		case string:
			segs[i] = wire.PathSegment{Key: x}
		case int:
			segs[i] = wire.PathSegment{Index: x, IsIndex: true}
		default:
			segs[i] = wire.PathSegment{Key: fmt.Sprint(x)}
		}
	}
	return wire.AppendPath(nil, segs)
}

// promiseUse is one promise argument of a call.
type promiseUse struct {
	p    *promise
	path []byte
}

var promiseTypes sync.Map // reflect.Type → bool

// isPromise reports whether T is a promise type.
func isPromise[T any]() bool {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Pointer { // promises are *Promise[R]: plain arguments skip the lookup
		return false
	}
	if v, ok := promiseTypes.Load(t); ok {
		return v.(bool)
	}
	is := t.Implements(promiseIfc)
	promiseTypes.Store(t, is)
	return is
}

// appendPromiseArg encodes a promise argument: its value if it has
// resolved and the server forgot it, else a placeholder the server
// replaces by the answer.
func appendPromiseArg(e *argEncoder, b []byte, i int, pa promiseArg) []byte {
	p, path := pa.promised()
	switch {
	case p == nil:
		e.err = Errorf(InvalidArgument, "%s: argument %d is a nil promise", e.id, i)
		return b
	case p.err != nil:
		// Passed on as is: along a chain of failed promises the error
		// names the first failure once instead of nesting.
		e.err = p.err
		return b
	}
	// An in-process call's promise, or one resolved and released: send
	// the value (an in-process one once it is in).
	if p.local != nil || !p.use() {
		res, err := p.async.Result()
		if err == nil && p.local != nil && len(p.local.refs) > 0 {
			err = Errorf(Unimplemented, "%s: argument %d is a promise of an in-process call that returned capabilities: Wait for it and pass them", e.id, i)
		}
		if err == nil && len(path) > 0 {
			res, err = value.Select(res, path)
		}
		if err != nil {
			e.err = wrapErr(CodeOf(fromStatus(err)), nil, fromStatus(err), fmt.Sprintf("%s: argument %d (a promise)", e.id, i))
			return b
		}
		return append(b, res...)
	}
	idx := len(e.promises)
	e.promises = append(e.promises, promiseUse{p: p, path: encodePath(path)})
	return value.AppendExt(b, wire.PromiseExt, binary.AppendUvarint(nil, uint64(idx)))
}

// sendAsync sends an encoded call without waiting and returns its
// promise.
func sendAsync[R any](ctx context.Context, c Caller, e *argEncoder, args []byte) *Promise[R] {
	if e.err != nil {
		e.done()
		return failedPromise[R](e.id, e.err)
	}
	// A chain longer than the limit is refused here, at its first link
	// too many, rather than partway through on the server.
	depth := 1
	for _, u := range e.promises {
		depth = max(depth, u.p.depth+1)
	}
	if r, ok := c.(*Ref); ok && r != nil && r.promise != nil {
		depth = max(depth, r.promise.depth+1)
	}
	if e.caps != nil {
		// Promised capabilities passed on wait too (counted whichever
		// connection they go to: never looser than the server).
		for _, x := range e.caps.entries {
			if x.ref != nil && x.ref.promise != nil {
				depth = max(depth, x.ref.promise.depth+1)
			}
		}
	}
	if limit := maxChainOf(c); depth > limit {
		e.done()
		return failedPromise[R](e.id, Errorf(ResourceExhausted, "%s: promise chain of %d calls exceeds the limit of %d (Config.MaxPromiseChain)", e.id, depth, limit))
	}
	req := &Request{ID: e.id, Kind: KindUnary, Async: true, Metadata: outgoingMetadata(ctx), Args: args,
		promises: e.promises, caps: e.caps}
	resp, err := c.Call(ctx, req)
	e.done()
	if err != nil {
		return failedPromise[R](e.id, err)
	}
	// The chain continues through the client that carried the call (a
	// cluster client's member), where its answer is.
	var via Caller = c
	if resp.owner != nil {
		via = resp.owner
	}
	p := newPromise[R](e.id, via, resp, resp.owner)
	p.depth = depth
	return p
}

// maxChainOf is the promise-chain limit of the client behind c.
func maxChainOf(c Caller) int {
	var cl *Client
	switch x := c.(type) {
	case *Client:
		cl = x
	case *Ref:
		if x != nil {
			cl = x.owner
		}
	}
	if cl != nil && cl.cfg.cfg.MaxPromiseChain > 0 {
		return cl.cfg.cfg.MaxPromiseChain
	}
	return conn.DefaultMaxChain
}

// Go0 sends a call to id without waiting and returns its promise.
func Go0[R any](ctx context.Context, c Caller, id string) *Promise[R] {
	e := argEncoder{id: id}
	return sendAsync[R](ctx, c, &e, value.AppendArrayHeader(nil, 0))
}

// Go1 sends a call to id with one argument (a value or a promise) without
// waiting and returns its promise:
//
//	p1 := arbor.Go2[int](ctx, client, "add", 1, 2)
//	p2 := arbor.Go2[int](ctx, client, "add", p1, 10) // sent at once; the server waits for p1
//	sum, err := p2.Wait()                            // 13, in one round trip
func Go1[R, A any](ctx context.Context, c Caller, id string, a A) *Promise[R] {
	e := argEncoder{id: id}
	b := value.AppendArrayHeader(nil, 1)
	b = appendArg(&e, b, 0, a)
	return sendAsync[R](ctx, c, &e, b)
}

// Go2 is Go1 with two arguments.
func Go2[R, A, B any](ctx context.Context, c Caller, id string, a A, b B) *Promise[R] {
	e := argEncoder{id: id}
	p := value.AppendArrayHeader(nil, 2)
	p = appendArg(&e, p, 0, a)
	p = appendArg(&e, p, 1, b)
	return sendAsync[R](ctx, c, &e, p)
}

// Go3 is Go1 with three arguments.
func Go3[R, A, B, C any](ctx context.Context, c Caller, id string, a A, b B, cc C) *Promise[R] {
	e := argEncoder{id: id}
	p := value.AppendArrayHeader(nil, 3)
	p = appendArg(&e, p, 0, a)
	p = appendArg(&e, p, 1, b)
	p = appendArg(&e, p, 2, cc)
	return sendAsync[R](ctx, c, &e, p)
}
