package arbor

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
)

// Typed calls exist per arity (Call0..Call3, Go0..Go3, Handle0..Handle3)
// because Go generics have no variadic type parameters; everything else
// has one form. Type parameters come result first, then arguments in
// order, so Call1[int](ctx, c, id, a) infers the argument types.

// argBuf is a reused buffer for encoding arguments.
type argBuf struct{ b []byte }

var argBufs = sync.Pool{New: func() any { return &argBuf{b: make([]byte, 0, 512)} }}

func getArgBuf() *argBuf { return argBufs.Get().(*argBuf) }

func putArgBuf(b *argBuf) {
	if cap(b.b) <= 64<<10 {
		argBufs.Put(b)
		return
	}
	// A large argument's buffer (see bigArgLen) is kept apart, for the
	// next large argument: small calls never pin it.
	if cap(b.b) <= maxBigArgBuf {
		big := b.b[:0]
		bigArgBufs.Put(&big)
	}
	b.b = nil
	argBufs.Put(b)
}

// bigArgBufs recycles the buffers of large []byte and string arguments;
// a call returns only once its connection holds no reference to them.
var bigArgBufs sync.Pool // of *[]byte

// maxBigArgBuf bounds the buffers kept in bigArgBufs.
const maxBigArgBuf = 8 << 20

// bigArg is the argument size from which its buffer comes from bigArgBufs.
const bigArg = 64 << 10

var (
	bytesType  = reflect.TypeFor[[]byte]()
	stringType = reflect.TypeFor[string]()
)

// bigArgLen is the length of v if T is []byte or string (without boxing
// v), else 0.
func bigArgLen[T any](v *T) int {
	switch reflect.TypeFor[T]() {
	case bytesType:
		return len(*(*[]byte)(unsafe.Pointer(v)))
	case stringType:
		return len(*(*string)(unsafe.Pointer(v)))
	}
	return 0
}

// minBlob is the size from which a []byte or string argument or result
// is left out of the encoded call or result (bigBlob): the connection
// copies it once into its write buffer (or, over 64 KiB, not at all)
// instead of it being copied into the encoding first.
const minBlob = 1 << 10

// bigBlob returns the bytes of *v when T is []byte or string and at least
// minBlob long, with b and the msgpack header that precedes them
// appended: the caller may send the bytes from where they lie instead of
// copying them after the header. It returns a nil blob otherwise.
func bigBlob[T any](b []byte, v *T) (hdr, blob []byte) {
	switch reflect.TypeFor[T]() {
	case bytesType:
		if p := *(*[]byte)(unsafe.Pointer(v)); len(p) >= minBlob {
			return value.AppendBytesHeader(b, len(p)), p
		}
	case stringType:
		if s := *(*string)(unsafe.Pointer(v)); len(s) >= minBlob {
			return value.AppendStringHeader(b, len(s)), unsafe.Slice(unsafe.StringData(s), len(s))
		}
	}
	return b, nil
}

// growForBig returns b with room for n more bytes, in a recycled buffer
// from bigArgBufs when it has one large enough.
func growForBig(b []byte, n int) []byte {
	need := len(b) + n
	if p, _ := bigArgBufs.Get().(*[]byte); p != nil {
		if cap(*p) >= need {
			return append((*p)[:0], b...)
		}
		bigArgBufs.Put(p)
	}
	return append(make([]byte, 0, need), b...)
}

// argEncoder collects what encoding a call's arguments learns: the
// promises they use, the capabilities they hold, and the first error.
type argEncoder struct {
	id       string
	promises []promiseUse
	caps     *capEncoder
	err      error
	// tail is the last argument's blob (bigBlob), left out of the
	// encoded arguments: the connection copies it once or sends it from
	// where it lies when the call goes straight to one, and it is
	// appended to them otherwise (see finish).
	tail []byte
}

// appendLastArg encodes the last argument, i: a []byte or string of
// minBlob bytes or more is left in e.tail after its header, unless the
// arguments before it are large already (the connection then sends them
// all from where they lie, as one part).
func appendLastArg[T any](e *argEncoder, b []byte, i int, v T) []byte {
	if e.err == nil && len(b) <= bigArg {
		if hdr, blob := bigBlob(b, &v); blob != nil {
			e.tail = blob
			return hdr
		}
	}
	return appendArg(e, b, i, v)
}

// appendArg encodes argument i.
func appendArg[T any](e *argEncoder, b []byte, i int, v T) []byte {
	if e.err != nil {
		return b
	}
	if isPromise[T]() {
		return appendPromiseArg(e, b, i, any(v).(promiseArg))
	}
	if n := bigArgLen(&v); n > bigArg && cap(b)-len(b) < n+16 {
		b = growForBig(b, n+16) // +16: the msgpack header, and what follows
	}
	c := value.For[T]()
	var err error
	if capTypes.has(reflect.TypeFor[T]()) {
		if e.caps == nil {
			e.caps = &capEncoder{}
		}
		b, err = c.AppendHost(b, v, e.caps)
	} else {
		b, err = c.Append(b, v)
	}
	if err != nil {
		e.err = argEncodeError(e.id, i, err)
	}
	return b
}

func argEncodeError(id string, i int, err error) error {
	if ae, ok := err.(*Error); ok {
		return ae
	}
	return wrapErr(InvalidArgument, ErrSerialization, err, fmt.Sprintf("%s: encoding argument %d", id, i))
}

// done ends the encoder's uses of promises: the call has been sent (or
// will not be).
func (e *argEncoder) done() {
	for _, u := range e.promises {
		u.p.used()
	}
}

// plain reports whether the call needs nothing beyond its bytes.
func (e *argEncoder) plain() bool { return len(e.promises) == 0 && e.caps == nil }

// finish sends the encoded arguments through c and decodes the result.
func finish[R any](ctx context.Context, c Caller, e *argEncoder, buf *argBuf) (R, error) {
	var zero R
	defer putArgBuf(buf)
	if e.err != nil {
		e.done()
		return zero, e.err
	}
	// The fast path: a plain call on a client without interceptors makes
	// no Request and decodes straight from the pooled reply.
	if e.plain() && !resultCaps[R]() {
		switch x := c.(type) {
		case *Client:
			if x.plain() {
				rep, err := x.callPlain(ctx, e.id, buf.b, e.tail)
				if err != nil {
					return zero, err
				}
				v, err := decodeResultOwned[R](e.id, rep.Result(), nil, rep.Owned())
				rep.Release()
				return v, err
			}
		case Router:
			if v, done, err := routePlain[R](ctx, x, e.id, buf.b, e.tail); done {
				return v, err
			}
		case *Ref:
			if x.plain() {
				o := conn.Outgoing{Function: e.id, Metadata: outgoingMetadata(ctx), Args: buf.b, ArgsTail: e.tail, Target: &x.target}
				rep, err := x.cc.Call(ctx, &o)
				if err != nil {
					return zero, fromStatus(err)
				}
				v, err := decodeResultOwned[R](e.id, rep.Result(), nil, rep.Owned())
				rep.Release()
				return v, err
			}
		}
	}
	if e.tail != nil { // a Request's arguments are whole
		buf.b = append(buf.b, e.tail...)
	}
	req := &Request{ID: e.id, Kind: KindUnary, Metadata: outgoingMetadata(ctx), Args: buf.b, promises: e.promises, caps: e.caps}
	resp, err := c.Call(ctx, req)
	e.done()
	if err != nil {
		return zero, err
	}
	dec := resp.decoder()
	if dec != nil {
		defer dec.releaseUnused()
	}
	return decodeResult[R](e.id, resp.Result, dec)
}

// Router is implemented by Callers that send each call through one of
// several Clients (a cluster client). A plain unary call (no promises or
// capabilities among its arguments, none in its result, no interceptors
// on the chosen Client) then takes the typed helpers' fast path on the
// Client the Router picks, attempt after attempt; other calls, and calls
// for which Route returns a nil Client (to hedge them, say), go through
// Call. A Client that is not Plain sends its calls through Call even when
// Route picked it, so a Router of such Clients should return nil before
// counting a pick.
type Router interface {
	Caller
	// Route picks the Client for an attempt of a call of id. prev is the
	// previous attempt's Routed (the zero value for the first).
	Route(ctx context.Context, id string, prev Routed) (*Client, Routed, error)
	// Done reports an attempt's outcome; it returns true to make another
	// attempt (it has waited any backoff already).
	Done(ctx context.Context, id string, r Routed, err error) (again bool)
}

// Routed is a Router's own record of one attempt, kept by the caller
// between Route and Done. Its fields are the Router's.
type Routed struct {
	Attempt int
	Member  any
	Start   time.Time
	State   [4]string
	Extra   uint64
}

// routePlain runs a plain call through r's Clients. done false means the
// call must go through Call instead.
func routePlain[R any](ctx context.Context, r Router, id string, args, tail []byte) (v R, done bool, err error) {
	var rt Routed
	for {
		var cl *Client
		cl, rt, err = r.Route(ctx, id, rt)
		if err != nil {
			return v, true, err
		}
		if cl == nil || !cl.plain() {
			return v, false, nil
		}
		rep, err := cl.callPlain(ctx, id, args, tail)
		if r.Done(ctx, id, rt, err) {
			if err == nil {
				rep.Release()
			}
			rt.Attempt++
			continue
		}
		if err != nil {
			return v, true, err
		}
		v, err = decodeResultOwned[R](id, rep.Result(), nil, rep.Owned())
		rep.Release()
		return v, true, err
	}
}

// callPlain is a unary call with no interceptor, promise or capability.
func (c *Client) callPlain(ctx context.Context, id string, args, tail []byte) (*conn.Reply, error) {
	o := conn.Outgoing{Function: id, Metadata: outgoingMetadata(ctx), Args: args, ArgsTail: tail, Idempotent: idempotentCall(ctx)}
	for attempt := 0; ; attempt++ {
		cc, err := c.conn(ctx)
		if err != nil {
			return nil, err
		}
		rep, err := cc.Call(ctx, &o)
		if err != nil {
			err = fromStatus(err)
			if attempt == 0 && refused(err) && ctx.Err() == nil {
				cc.Retire()
				continue
			}
			return nil, err
		}
		return rep, nil
	}
}

// decodeResult decodes a result as R, binding the capabilities in it to
// dec's connection.
func decodeResult[R any](id string, res []byte, dec *capDecoder) (R, error) {
	return decodeResultOwned[R](id, res, dec, false)
}

// decodeResultOwned is decodeResult; owned says res is the caller's for
// good (conn.Reply.Owned), so blobs in it are returned without a copy.
func decodeResultOwned[R any](id string, res []byte, dec *capDecoder, owned bool) (R, error) {
	c := value.For[R]()
	var v R
	var err error
	var rest int
	if dec != nil {
		r := value.NewReader(res) // escapes through DecodeHost: allocated only here
		if owned {
			r.AliasBytes()
		}
		v, err = c.DecodeHost(&r, dec)
		rest = len(r.Rest())
	} else {
		r := value.NewReader(res)
		if owned {
			r.AliasBytes()
		}
		v, err = c.Decode(&r)
		rest = len(r.Rest())
	}
	if err == nil && rest > 0 {
		err = fmt.Errorf("%d byte(s) after the result", rest)
	}
	if err != nil {
		var zero R
		// The server answered; the caller's type does not fit it. Bad
		// input to this side, not a fault of the server.
		return zero, wrapErr(InvalidArgument, ErrSerialization, err, fmt.Sprintf("%s: decoding the result as %s", id, c.TypeName()))
	}
	return v, nil
}

// Call0 calls function id, which takes no arguments, and decodes its
// result as R.
func Call0[R any](ctx context.Context, c Caller, id string) (R, error) {
	e := argEncoder{id: id}
	buf := getArgBuf()
	buf.b = value.AppendArrayHeader(buf.b[:0], 0)
	return finish[R](ctx, c, &e, buf)
}

// Call1 calls function id with one argument and decodes its result as R:
//
//	out, err := arbor.Call1[[]byte](ctx, client, "echo", payload)
//
// An argument may be a value, a promise (GoN), a *Ref or a *Service (or a
// struct, slice or map holding them).
func Call1[R, A any](ctx context.Context, c Caller, id string, a A) (R, error) {
	e := argEncoder{id: id}
	buf := getArgBuf()
	b := value.AppendArrayHeader(buf.b[:0], 1)
	buf.b = appendLastArg(&e, b, 0, a)
	return finish[R](ctx, c, &e, buf)
}

// Call2 calls function id with two arguments and decodes its result as R:
//
//	sum, err := arbor.Call2[int](ctx, client, "add", 2, 3)
func Call2[R, A, B any](ctx context.Context, c Caller, id string, a A, b B) (R, error) {
	e := argEncoder{id: id}
	buf := getArgBuf()
	p := value.AppendArrayHeader(buf.b[:0], 2)
	p = appendArg(&e, p, 0, a)
	buf.b = appendLastArg(&e, p, 1, b)
	return finish[R](ctx, c, &e, buf)
}

// Call3 calls function id with three arguments and decodes its result as
// R.
func Call3[R, A, B, C any](ctx context.Context, c Caller, id string, a A, b B, cc C) (R, error) {
	e := argEncoder{id: id}
	buf := getArgBuf()
	p := value.AppendArrayHeader(buf.b[:0], 3)
	p = appendArg(&e, p, 0, a)
	p = appendArg(&e, p, 1, b)
	buf.b = appendLastArg(&e, p, 2, cc)
	return finish[R](ctx, c, &e, buf)
}

// CallAny calls id with arguments given as plain Go values (what
// encoding/json produces, with json.Number for numbers) and returns the
// result as a plain value. The CLI uses it; typed code should use CallN.
func CallAny(ctx context.Context, c Caller, id string, args ...any) (any, error) {
	e := argEncoder{id: id}
	buf := getArgBuf()
	p := value.AppendArrayHeader(buf.b[:0], len(args))
	var err error
	for i, a := range args {
		if p, err = value.AppendAny(p, a); err != nil {
			e.err = argEncodeError(id, i, err)
			break
		}
	}
	buf.b = p
	return finish[any](ctx, c, &e, buf)
}

// CallRaw calls id with msgpack-encoded arguments (an array) and returns
// the msgpack-encoded result, for code that encodes its own values (a
// proxy, a bridge). Typed code should use CallN.
func CallRaw(ctx context.Context, c Caller, id string, args []byte) ([]byte, error) {
	resp, err := c.Call(ctx, &Request{ID: id, Kind: KindUnary, Metadata: outgoingMetadata(ctx), Args: args})
	if err != nil {
		return nil, err
	}
	if dec := resp.decoder(); dec != nil { // nobody will decode them: the server may free them
		dec.releaseUnused()
	}
	return resp.Result, nil
}
