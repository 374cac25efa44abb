package arbor

import (
	"context"
	"fmt"
	"strings"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// FunctionInfo describes a registered function for introspection.
type FunctionInfo struct {
	ID     string   `msgpack:"id" json:"id"`
	Args   []string `msgpack:"args" json:"args"`
	Result string   `msgpack:"result" json:"result"`
	// Kind is KindUnary or one of the stream kinds.
	Kind string `msgpack:"kind" json:"kind"`
}

func (f FunctionInfo) String() string {
	return fmt.Sprintf("%s(%s) %s", f.ID, strings.Join(f.Args, ", "), f.Result)
}

// handler is one registered function: its signature and a closure that
// decodes the arguments, runs it and encodes the result.
type handler struct {
	info   FunctionInfo
	invoke func(ctx context.Context, args []byte, out []byte) ([]byte, error)
	// stream serves a streaming function (invoke is nil then).
	stream func(ctx context.Context, st Stream, args []byte, out []byte) ([]byte, error)
}

func newHandler(id string, result string, args ...string) *handler {
	return &handler{info: FunctionInfo{ID: id, Args: args, Result: result, Kind: KindUnary}}
}

// arity reads the argument array header and checks the count.
func (h *handler) arity(r *value.Reader) error {
	n, err := r.ReadArrayHeader()
	if err != nil {
		return status.Wrap(InvalidArgument, status.ErrSerialization, err, h.info.ID+": arguments must be a msgpack array")
	}
	if n != len(h.info.Args) {
		return status.Errorf(InvalidArgument, "%s takes %d argument(s) (%s), got %d", h.info.ID, len(h.info.Args), strings.Join(h.info.Args, ", "), n)
	}
	return nil
}

func (h *handler) argError(i int, err error) error {
	return status.Wrap(InvalidArgument, status.ErrSerialization, err,
		fmt.Sprintf("%s: argument %d (%s)", h.info.ID, i, h.info.Args[i]))
}

func encodeResult[R any](ctx context.Context, h *handler, out []byte, res R) ([]byte, error) {
	if isServiceType[R]() { // a capability: export it to the caller
		b, err := appendCapability(out, conn.FromContext(ctx), any(res).(*Service))
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	out, err := value.For[R]().Append(out, res)
	if err != nil {
		return nil, status.Wrap(Internal, status.ErrSerialization, err, h.info.ID+": encoding the result")
	}
	return out, nil
}

// Handle0 registers fn as function id, taking no arguments.
func Handle0[R any](s Registrar, id string, fn func(ctx context.Context) (R, error)) error {
	h := newHandler(id, value.For[R]().TypeName())
	h.invoke = func(ctx context.Context, args, out []byte) ([]byte, error) {
		r := value.NewReader(args)
		if err := h.arity(&r); err != nil {
			return nil, err
		}
		res, err := fn(ctx)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, out, res)
	}
	return s.register(h)
}

// Handle1 registers fn as function id, taking one argument.
func Handle1[A, R any](s Registrar, id string, fn func(ctx context.Context, a A) (R, error)) error {
	ca := value.For[A]()
	h := newHandler(id, value.For[R]().TypeName(), ca.TypeName())
	h.invoke = func(ctx context.Context, args, out []byte) ([]byte, error) {
		r := value.NewReader(args)
		if err := h.arity(&r); err != nil {
			return nil, err
		}
		a, err := decodeArg(ctx, h, 0, ca, &r)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, a)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, out, res)
	}
	return s.register(h)
}

// Handle2 registers fn as function id, taking two arguments.
func Handle2[A, B, R any](s Registrar, id string, fn func(ctx context.Context, a A, b B) (R, error)) error {
	ca, cb := value.For[A](), value.For[B]()
	h := newHandler(id, value.For[R]().TypeName(), ca.TypeName(), cb.TypeName())
	h.invoke = func(ctx context.Context, args, out []byte) ([]byte, error) {
		r := value.NewReader(args)
		if err := h.arity(&r); err != nil {
			return nil, err
		}
		a, err := decodeArg(ctx, h, 0, ca, &r)
		if err != nil {
			return nil, err
		}
		b, err := decodeArg(ctx, h, 1, cb, &r)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, a, b)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, out, res)
	}
	return s.register(h)
}

// Handle3 registers fn as function id, taking three arguments.
func Handle3[A, B, C, R any](s Registrar, id string, fn func(ctx context.Context, a A, b B, c C) (R, error)) error {
	ca, cb, cc := value.For[A](), value.For[B](), value.For[C]()
	h := newHandler(id, value.For[R]().TypeName(), ca.TypeName(), cb.TypeName(), cc.TypeName())
	h.invoke = func(ctx context.Context, args, out []byte) ([]byte, error) {
		r := value.NewReader(args)
		if err := h.arity(&r); err != nil {
			return nil, err
		}
		a, err := decodeArg(ctx, h, 0, ca, &r)
		if err != nil {
			return nil, err
		}
		b, err := decodeArg(ctx, h, 1, cb, &r)
		if err != nil {
			return nil, err
		}
		c, err := decodeArg(ctx, h, 2, cc, &r)
		if err != nil {
			return nil, err
		}
		res, err := fn(ctx, a, b, c)
		if err != nil {
			return nil, err
		}
		return encodeResult(ctx, h, out, res)
	}
	return s.register(h)
}
