package arbor

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// argBuf is a reused buffer for encoding arguments.
type argBuf struct{ b []byte }

var argBufs = sync.Pool{New: func() any { return &argBuf{b: make([]byte, 0, 512)} }}

func getArgBuf() *argBuf { return argBufs.Get().(*argBuf) }

func putArgBuf(b *argBuf) {
	if cap(b.b) <= 64<<10 {
		argBufs.Put(b)
	}
}

func argEncodeError(fn string, i int, err error) error {
	return status.Wrap(InvalidArgument, status.ErrSerialization, err, fmt.Sprintf("%s: encoding argument %d", fn, i))
}

func appendArg[T any](b []byte, fn string, i int, v T, err error) ([]byte, error) {
	if err != nil {
		return b, err
	}
	if reflect.TypeFor[T]() == refType {
		return b, status.Errorf(Unimplemented, "%s: argument %d is a reference: passing a capability back to the side that exported it is not supported yet", fn, i)
	}
	if isServiceType[T]() {
		return b, status.Errorf(InvalidArgument, "%s: argument %d is a service: pass services to methods of a reference (CallRefN) or return them from handlers", fn, i)
	}
	if isPromise[T]() {
		return b, status.Errorf(InvalidArgument, "%s: argument %d is a promise: send the call with GoN(...) and Wait", fn, i)
	}
	b, err = value.For[T]().Append(b, v)
	if err != nil {
		return b, argEncodeError(fn, i, err)
	}
	return b, nil
}

// finish sends the encoded arguments and decodes the result as R.
func finish[R any](ctx context.Context, c *Client, fn string, buf *argBuf, err error) (R, error) {
	var zero R
	if err != nil {
		putArgBuf(buf)
		return zero, err
	}
	res, rep, err := c.invoke(ctx, fn, buf.b)
	putArgBuf(buf)
	if err != nil {
		return zero, err
	}
	var cc *conn.Conn
	if rep != nil {
		cc = rep.Conn()
	} else {
		cc = c.cur.Load() // through interceptors: the current connection
	}
	v, err := decodeResult[R](fn, res, cc)
	release(rep)
	return v, err
}

// Call0 calls function fn, which takes no arguments, and decodes its result
// as R.
func Call0[R any](ctx context.Context, c *Client, fn string) (R, error) {
	buf := getArgBuf()
	buf.b = value.AppendArrayHeader(buf.b[:0], 0)
	return finish[R](ctx, c, fn, buf, nil)
}

// Call1 calls function fn with one argument and decodes its result as R:
//
//	out, err := arbor.Call1[[]byte](ctx, client, "echo", payload)
func Call1[R, A any](ctx context.Context, c *Client, fn string, a A) (R, error) {
	buf := getArgBuf()
	b := value.AppendArrayHeader(buf.b[:0], 1)
	b, err := appendArg(b, fn, 0, a, nil)
	buf.b = b
	return finish[R](ctx, c, fn, buf, err)
}

// Call2 calls function fn with two arguments and decodes its result as R:
//
//	sum, err := arbor.Call2[int](ctx, client, "add", 2, 3)
func Call2[R, A, B any](ctx context.Context, c *Client, fn string, a A, b B) (R, error) {
	buf := getArgBuf()
	p := value.AppendArrayHeader(buf.b[:0], 2)
	p, err := appendArg(p, fn, 0, a, nil)
	p, err = appendArg(p, fn, 1, b, err)
	buf.b = p
	return finish[R](ctx, c, fn, buf, err)
}

// Call3 calls function fn with three arguments and decodes its result as R.
func Call3[R, A, B, C any](ctx context.Context, c *Client, fn string, a A, b B, cc C) (R, error) {
	buf := getArgBuf()
	p := value.AppendArrayHeader(buf.b[:0], 3)
	p, err := appendArg(p, fn, 0, a, nil)
	p, err = appendArg(p, fn, 1, b, err)
	p, err = appendArg(p, fn, 2, cc, err)
	buf.b = p
	return finish[R](ctx, c, fn, buf, err)
}

// CallAny calls fn with arguments given as plain Go values (what
// encoding/json produces, with json.Number for numbers) and returns the
// result as a plain value. The CLI uses it; typed code should use CallN.
func CallAny(ctx context.Context, c *Client, fn string, args ...any) (any, error) {
	buf := getArgBuf()
	p := value.AppendArrayHeader(buf.b[:0], len(args))
	var err error
	for i, a := range args {
		if p, err = value.AppendAny(p, a); err != nil {
			err = argEncodeError(fn, i, err)
			break
		}
	}
	buf.b = p
	return finish[any](ctx, c, fn, buf, err)
}
