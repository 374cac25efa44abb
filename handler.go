package arbor

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// FunctionInfo describes a registered function (or a service's method)
// for introspection: the server's catalog.
type FunctionInfo struct {
	ID     string   `msgpack:"id" json:"id"`
	Kind   Kind     `msgpack:"kind" json:"kind"`
	Args   []string `msgpack:"args" json:"args"`
	Result string   `msgpack:"result" json:"result"`
	// Title is a human name (WithTitle).
	Title string `msgpack:"title,omitempty" json:"title,omitempty"`
	// Idempotent says calling it twice is the same as once (Idempotent),
	// so a cluster client may retry or hedge it.
	Idempotent bool `msgpack:"idempotent,omitempty" json:"idempotent,omitempty"`
	// Local says the function is cheap (Local): in a request tree
	// resolved by a cluster, it runs on the node that has the tree rather
	// than paying a round trip to another.
	Local bool `msgpack:"local,omitempty" json:"local,omitempty"`
}

func (f FunctionInfo) String() string {
	return fmt.Sprintf("%s(%s) %s", f.ID, strings.Join(f.Args, ", "), f.Result)
}

// HandleOption describes a function at registration.
type HandleOption func(*FunctionInfo)

// WithTitle gives a function a human name in the catalog.
func WithTitle(title string) HandleOption { return func(f *FunctionInfo) { f.Title = title } }

// Idempotent declares that calling the function twice has the effect of
// calling it once, so a cluster client may retry it after its node died
// mid-call, and hedge it.
func Idempotent() HandleOption { return func(f *FunctionInfo) { f.Idempotent = true } }

// Local declares that the function is cheap: when a cluster resolves a
// request tree, a request for it stays on the node that has the tree
// instead of going to another (see package cluster's Distribute).
func Local() HandleOption { return func(f *FunctionInfo) { f.Local = true } }

// Registrar is what functions register on: a *Server (functions callable
// by id) or a *Service (methods callable through a reference).
type Registrar interface {
	register(h *handler, builtin bool) error
}

// handler is one registered function: its description and closures that
// decode the arguments, run it and encode the result. in is the incoming
// call (nil when invoked in-process); the result's capabilities are
// recorded in it.
type handler struct {
	info   FunctionInfo
	invoke func(ctx context.Context, in *conn.Incoming, args, out []byte) ([]byte, error)
	// stream serves a streaming function (invoke is nil then).
	stream func(ctx context.Context, in *conn.Incoming, st Stream, args, out []byte) ([]byte, error)
	// caps says the arguments may hold capabilities.
	caps bool
	// inline records how quickly its calls run: quick functions run on
	// the connection's reader (see conn.Inliner).
	inline conn.InlineStat
}

// reservedPrefix starts the ids of built-in functions.
const reservedPrefix = "arbor."

// checkID validates a function id or method name.
func checkID(id string, builtin bool) error {
	switch {
	case id == "":
		return Errorf(InvalidArgument, "the function id is empty")
	case len(id) > wire.MaxFunctionID:
		return Errorf(InvalidArgument, "function id %.40q... is %d bytes, over the limit of %d", id, len(id), wire.MaxFunctionID)
	case !utf8.ValidString(id):
		return Errorf(InvalidArgument, "function id %q is not valid UTF-8", id)
	case !builtin && strings.HasPrefix(id, reservedPrefix):
		return Errorf(InvalidArgument, "function id %q: the %q prefix is reserved for Arbor's built-in functions", id, reservedPrefix)
	}
	return nil
}

var (
	serviceType   = reflect.TypeFor[*Service]()
	refType       = reflect.TypeFor[*Ref]()
	promiseIfc    = reflect.TypeFor[promiseArg]()
	marshalerType = reflect.TypeFor[value.Marshaler]()
)

// checkArg validates a parameter type: the codec must carry it, and it
// may not be a service (handlers receive capabilities as *Ref) or a
// promise (which only callers hold).
func checkArg[T any](id string, i int) error {
	t := reflect.TypeFor[T]()
	switch {
	case t == serviceType:
		return Errorf(InvalidArgument, "%s: argument %d is *arbor.Service: a handler receives capabilities as *arbor.Ref", id, i)
	case t.Implements(promiseIfc):
		return Errorf(InvalidArgument, "%s: argument %d is a promise: handlers receive the promised value", id, i)
	}
	if err := value.For[T]().Err(); err != nil {
		return Errorf(InvalidArgument, "%s: argument %d: %v", id, i, err)
	}
	return nil
}

func checkResult[R any](id string) error {
	t := reflect.TypeFor[R]()
	if t.Implements(promiseIfc) {
		return Errorf(InvalidArgument, "%s: the result is a promise: return the value", id)
	}
	if err := value.For[R]().Err(); err != nil {
		return Errorf(InvalidArgument, "%s: result: %v", id, err)
	}
	return nil
}

func newHandler(id string, kind Kind, result string, opts []HandleOption, args ...string) *handler {
	h := &handler{info: FunctionInfo{ID: id, Kind: kind, Args: args, Result: result}}
	for _, o := range opts {
		o(&h.info)
	}
	return h
}

// arity reads the argument array header and checks the count.
func (h *handler) arity(r *value.Reader) error {
	n, err := r.ReadArrayHeader()
	if err != nil {
		return wrapErr(InvalidArgument, ErrSerialization, err, h.info.ID+": arguments must be a msgpack array")
	}
	if n != len(h.info.Args) {
		return Errorf(InvalidArgument, "%s takes %d argument(s) (%s), got %d", h.info.ID, len(h.info.Args), strings.Join(h.info.Args, ", "), n)
	}
	return nil
}

// done checks nothing follows the arguments.
func (h *handler) done(r *value.Reader) error {
	if n := len(r.Rest()); n > 0 {
		return Errorf(InvalidArgument, "%s: %d byte(s) after the argument array", h.info.ID, n)
	}
	return nil
}

func (h *handler) argError(i int, err error) error {
	return wrapErr(InvalidArgument, ErrSerialization, err, fmt.Sprintf("%s: argument %d (%s)", h.info.ID, i, h.info.Args[i]))
}

// hasCaps reports whether values of t may hold capabilities.
func hasCaps(t reflect.Type) bool { return capsReachable(t, map[reflect.Type]bool{}) }

func capsReachable(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if t != refType && t != serviceType && (t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType)) {
		return false // encodes itself
	}
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Pointer:
		return t == refType || t == serviceType || capsReachable(t.Elem(), seen)
	case reflect.Slice, reflect.Array:
		return capsReachable(t.Elem(), seen)
	case reflect.Map:
		return capsReachable(t.Key(), seen) || capsReachable(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if capsReachable(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

// argDecoder decodes one call's arguments, binding capabilities in them
// to the call's connection.
type argDecoder struct {
	h   *handler
	r   value.Reader
	dec *capDecoder // nil when no argument may hold capabilities
}

func (h *handler) decoder(ctx context.Context, in *conn.Incoming, args []byte) (argDecoder, error) {
	d := argDecoder{h: h, r: value.NewReader(args)}
	if in != nil && in.ArgsOwned && len(args) > 0 && len(in.Args) > 0 && &args[0] == &in.Args[0] {
		d.r.AliasBytes() // a large call's own buffer: blobs in it need no copy
	}
	if h.caps {
		if in != nil {
			if in.CapsTaken {
				return d, capsRerun(h.info.ID)
			}
			d.dec = &capDecoder{cc: in.Conn, table: takeCaps(in)}
		} else if ls := localSiteOf(ctx, h); ls != nil {
			if ls.taken {
				return d, capsRerun(h.info.ID)
			}
			ls.taken = ls.hasCaps
			d.dec = ls.args
		}
	}
	if err := h.arity(&d.r); err != nil {
		d.abandon()
		return d, err
	}
	return d, nil
}

// finish checks the end of the arguments and releases capabilities the
// peer sent that no argument took.
func (d *argDecoder) finish(in *conn.Incoming) error {
	if err := d.h.done(&d.r); err != nil {
		d.abandon()
		return err
	}
	if d.dec != nil {
		d.dec.releaseUnused()
	} else if in != nil && len(in.Caps) > 0 {
		releaseCaps(in)
	}
	return nil
}

// abandon releases the arguments' capabilities, the references decoded
// so far included: the handler will not run, so none is handed over.
func (d *argDecoder) abandon() {
	if d.dec != nil {
		d.dec.releaseAll()
	}
}

func decodeArg[A any](d *argDecoder, i int, ca *value.Codec[A]) (A, error) {
	var a A
	var err error
	if d.dec != nil {
		// The reader escapes through DecodeHost: a copy declared here is
		// allocated only on this path.
		r := d.r
		a, err = ca.DecodeHost(&r, d.dec)
		d.r = r
	} else {
		a, err = ca.Decode(&d.r)
	}
	if err != nil {
		d.abandon()
		return a, d.h.argError(i, err)
	}
	return a, nil
}

// encodeResult appends the result, exporting the capabilities it holds
// on the call's connection. References in a result are handed over:
// they are closed once the result's table holds its own.
func encodeResult[R any](ctx context.Context, h *handler, in *conn.Incoming, out []byte, res R) ([]byte, error) {
	c := value.For[R]()
	if !resultCaps[R]() {
		if in != nil && in.TailOK {
			// A blob result (bigBlob) is not copied here: the
			// connection writes it after out.
			if hdr, blob := bigBlob(out, &res); blob != nil {
				in.ResultTail = blob
				return hdr, nil
			}
		}
		b, err := c.Append(out, res)
		if err != nil {
			return nil, wrapErr(Internal, ErrSerialization, err, h.info.ID+": encoding the result")
		}
		return b, nil
	}
	var ls *localSite
	if in == nil {
		ls = localSiteOf(ctx, h)
	}
	enc := new(capEncoder)
	if ls != nil {
		enc = &ls.result
	}
	b, err := c.AppendHost(out, res, enc)
	if err != nil {
		enc.closeRefs()
		return nil, wrapErr(Internal, ErrSerialization, err, h.info.ID+": encoding the result")
	}
	if len(enc.entries) > 0 && ls == nil {
		if in == nil {
			enc.closeRefs()
			return nil, Errorf(FailedPrecondition, "%s returned a capability, which only a caller through a connection or a reference can receive", h.info.ID)
		}
		in.ResultCaps, err = enc.resolve(in.Conn)
		enc.closeRefs() // handed over: the result's table holds its own
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// resultCaps reports (cached per type) whether R may hold capabilities.
func resultCaps[R any]() bool { return capTypes.has(reflect.TypeFor[R]()) }

// Handle0 registers fn as function id, taking no arguments:
//
//	err := arbor.Handle0(srv, "now", func(ctx context.Context) (time.Time, error) { return time.Now(), nil })
func Handle0[R any](r Registrar, id string, fn func(ctx context.Context) (R, error), opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := checkResult[R](id); err != nil {
		return err
	}
	h := newHandler(id, KindUnary, value.For[R]().TypeName(), opts)
	h.invoke = func(ctx context.Context, in *conn.Incoming, args, out []byte) ([]byte, error) {
		d, err := h.decoder(ctx, in, args)
		if err != nil {
			return nil, err
		}
		if err := d.finish(in); err != nil {
			return nil, err
		}
		res, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, in, out, res)
	}
	return r.register(h, false)
}

// Handle1 registers fn as function id, taking one argument:
//
//	err := arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
func Handle1[R, A any](r Registrar, id string, fn func(ctx context.Context, a A) (R, error), opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := firstErr(checkResult[R](id), checkArg[A](id, 0)); err != nil {
		return err
	}
	ca := value.For[A]()
	h := newHandler(id, KindUnary, value.For[R]().TypeName(), opts, ca.TypeName())
	h.caps = hasCaps(reflect.TypeFor[A]())
	h.invoke = func(ctx context.Context, in *conn.Incoming, args, out []byte) ([]byte, error) {
		d, err := h.decoder(ctx, in, args)
		if err != nil {
			return nil, err
		}
		a, err := decodeArg(&d, 0, ca)
		if err != nil {
			return nil, err
		}
		if err := d.finish(in); err != nil {
			return nil, err
		}
		res, err := fn(ctx, a)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, in, out, res)
	}
	return r.register(h, false)
}

// Handle2 registers fn as function id, taking two arguments:
//
//	err := arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
func Handle2[R, A, B any](r Registrar, id string, fn func(ctx context.Context, a A, b B) (R, error), opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := firstErr(checkResult[R](id), checkArg[A](id, 0), checkArg[B](id, 1)); err != nil {
		return err
	}
	ca, cb := value.For[A](), value.For[B]()
	h := newHandler(id, KindUnary, value.For[R]().TypeName(), opts, ca.TypeName(), cb.TypeName())
	h.caps = hasCaps(reflect.TypeFor[A]()) || hasCaps(reflect.TypeFor[B]())
	h.invoke = func(ctx context.Context, in *conn.Incoming, args, out []byte) ([]byte, error) {
		d, err := h.decoder(ctx, in, args)
		if err != nil {
			return nil, err
		}
		a, err := decodeArg(&d, 0, ca)
		if err != nil {
			return nil, err
		}
		b, err := decodeArg(&d, 1, cb)
		if err != nil {
			return nil, err
		}
		if err := d.finish(in); err != nil {
			return nil, err
		}
		res, err := fn(ctx, a, b)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, in, out, res)
	}
	return r.register(h, false)
}

// Handle3 registers fn as function id, taking three arguments.
func Handle3[R, A, B, C any](r Registrar, id string, fn func(ctx context.Context, a A, b B, c C) (R, error), opts ...HandleOption) error {
	if err := precheck(id, fn == nil); err != nil {
		return err
	}
	if err := firstErr(checkResult[R](id), checkArg[A](id, 0), checkArg[B](id, 1), checkArg[C](id, 2)); err != nil {
		return err
	}
	ca, cb, cc := value.For[A](), value.For[B](), value.For[C]()
	h := newHandler(id, KindUnary, value.For[R]().TypeName(), opts, ca.TypeName(), cb.TypeName(), cc.TypeName())
	h.caps = hasCaps(reflect.TypeFor[A]()) || hasCaps(reflect.TypeFor[B]()) || hasCaps(reflect.TypeFor[C]())
	h.invoke = func(ctx context.Context, in *conn.Incoming, args, out []byte) ([]byte, error) {
		d, err := h.decoder(ctx, in, args)
		if err != nil {
			return nil, err
		}
		a, err := decodeArg(&d, 0, ca)
		if err != nil {
			return nil, err
		}
		b, err := decodeArg(&d, 1, cb)
		if err != nil {
			return nil, err
		}
		c, err := decodeArg(&d, 2, cc)
		if err != nil {
			return nil, err
		}
		if err := d.finish(in); err != nil {
			return nil, err
		}
		res, err := fn(ctx, a, b, c)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, in, out, res)
	}
	return r.register(h, false)
}

// RawFunc is a function over encoded values: it takes the msgpack array
// of arguments and returns the msgpack-encoded result.
type RawFunc func(ctx context.Context, args []byte) ([]byte, error)

// HandleRaw registers a function that decodes its own arguments and
// encodes its own result, described by info (ID, and the Args and Result
// type names the catalog shows). Like any function it runs through the
// server's interceptors; request-tree resolution registers its built-in
// functions this way.
func HandleRaw(r Registrar, info FunctionInfo, fn RawFunc, opts ...HandleOption) error {
	return handleRaw(r, info, fn, opts, false)
}

func handleRaw(r Registrar, info FunctionInfo, fn RawFunc, opts []HandleOption, builtin bool) error {
	if err := checkID(info.ID, builtin); err != nil {
		return err
	}
	if fn == nil {
		return Errorf(InvalidArgument, "%s: the function is nil", info.ID)
	}
	if info.Kind != "" && info.Kind != KindUnary {
		return Errorf(InvalidArgument, "%s: HandleRaw registers unary functions, not %s", info.ID, info.Kind)
	}
	info.Kind = KindUnary
	h := &handler{info: info}
	for _, o := range opts {
		o(&h.info)
	}
	h.invoke = func(ctx context.Context, in *conn.Incoming, args, out []byte) ([]byte, error) {
		if in != nil && len(in.Caps) > 0 {
			releaseCaps(in)
		}
		res, err := fn(ctx, args)
		if err != nil {
			return nil, err
		}
		return append(out, res...), nil
	}
	return r.register(h, builtin)
}

// precheck validates what every registration shares (the reserved
// prefix is the registrar's to check: built-ins may use it).
func precheck(id string, nilFn bool) error {
	if err := checkID(id, true); err != nil {
		return err
	}
	if nilFn {
		return Errorf(InvalidArgument, "%s: the function is nil", id)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
