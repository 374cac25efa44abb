package arbor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor"
)

type Point struct {
	X, Y int
}

type Rect struct {
	Name     string
	Min, Max Point
}

type Shape struct {
	Name    string
	Area    int
	Corners []Point
	Tags    map[string]string
}

// newServer returns a server with the functions most tests call.
func newServer(t testing.TB, opts ...arbor.ServerOption) *arbor.Server {
	t.Helper()
	s := arbor.NewServer(opts...)
	must(t, arbor.Handle0(s, "hello", func(ctx context.Context) (string, error) { return "hello, world", nil }))
	must(t, arbor.Handle1(s, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil }))
	must(t, arbor.Handle1(s, "negate", func(ctx context.Context, n int64) (int64, error) { return -n, nil }))
	must(t, arbor.Handle2(s, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil }))
	must(t, arbor.Handle3(s, "join", func(ctx context.Context, a, sep, b string) (string, error) { return a + sep + b, nil }))
	must(t, arbor.Handle1(s, "sum", func(ctx context.Context, xs []int) (int, error) {
		n := 0
		for _, x := range xs {
			n += x
		}
		return n, nil
	}))
	must(t, arbor.Handle2(s, "split", func(ctx context.Context, s, sep string) ([]string, error) { return strings.Split(s, sep), nil }))
	must(t, arbor.Handle1(s, "shape", func(ctx context.Context, r Rect) (Shape, error) {
		w, h := r.Max.X-r.Min.X, r.Max.Y-r.Min.Y
		return Shape{
			Name:    r.Name,
			Area:    w * h,
			Corners: []Point{r.Min, {r.Max.X, r.Min.Y}, r.Max, {r.Min.X, r.Max.Y}},
			Tags:    map[string]string{"kind": "rect"},
		}, nil
	}))
	// fail returns the error its arguments describe.
	must(t, arbor.Handle3(s, "fail", func(ctx context.Context, code int, msg string, details []byte) (int, error) {
		return 0, &arbor.Error{Code: arbor.Code(code), Message: msg, Details: details, Retryable: len(details) > 0}
	}))
	// goerr returns a Go error that is not an *arbor.Error.
	must(t, arbor.Handle1(s, "goerr", func(ctx context.Context, which string) (int, error) {
		switch which {
		case "canceled":
			return 0, context.Canceled
		case "deadline":
			return 0, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
		case "wrapped":
			return 0, fmt.Errorf("layer: %w", arbor.NewError(arbor.PermissionDenied, "not yours"))
		}
		return 0, errors.New("plain failure: " + which)
	}))
	must(t, arbor.Handle0(s, "panic", func(ctx context.Context) (int, error) { panic("boom") }))
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTypedCalls(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		c := start(t, nc, newServer(t)).dial()

		check := func(name string, got, want any, err error) {
			t.Helper()
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s = %#v, want %#v", name, got, want)
			}
		}

		s, err := arbor.Call0[string](ctx, c, "hello")
		check("hello()", s, "hello, world", err)

		n, err := arbor.Call2[int](ctx, c, "add", 2, 3)
		check("add(2, 3)", n, 5, err)
		n, err = arbor.Call2[int](ctx, c, "add", -1<<40, 1<<20)
		check("add(-2^40, 2^20)", n, -1<<40+1<<20, err)

		i64, err := arbor.Call1[int64](ctx, c, "negate", int64(-1<<62))
		check("negate", i64, int64(1<<62), err)

		s, err = arbor.Call3[string](ctx, c, "join", "a", "-", "b")
		check("join", s, "a-b", err)
		s, err = arbor.Call3[string](ctx, c, "join", "", "", "")
		check("join empty", s, "", err)
		s, err = arbor.Call3[string](ctx, c, "join", "héllo", " ✓ ", strings.Repeat("x", 70000))
		check("join unicode/long", s, "héllo ✓ "+strings.Repeat("x", 70000), err)

		for _, size := range []int{0, 1, 64, 4096, 200 << 10} {
			in := bytes.Repeat([]byte{0, 1, 2, 0xff}, size/4)
			out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
			if err != nil || !bytes.Equal(out, in) {
				t.Errorf("echo %d bytes: got %d bytes, %v", size, len(out), err)
			}
		}

		n, err = arbor.Call1[int](ctx, c, "sum", []int{1, 2, 3, 4})
		check("sum", n, 10, err)
		n, err = arbor.Call1[int](ctx, c, "sum", []int(nil))
		check("sum nil", n, 0, err)

		parts, err := arbor.Call2[[]string](ctx, c, "split", "a,b,,c", ",")
		check("split", parts, []string{"a", "b", "", "c"}, err)

		sh, err := arbor.Call1[Shape](ctx, c, "shape", Rect{Name: "r", Min: Point{1, 2}, Max: Point{4, 6}})
		check("shape", sh, Shape{
			Name: "r", Area: 12,
			Corners: []Point{{1, 2}, {4, 2}, {4, 6}, {1, 6}},
			Tags:    map[string]string{"kind": "rect"},
		}, err)

		// Untyped callers (the CLI) get plain values back.
		v, err := arbor.CallAny(ctx, c, "add", 40, 2)
		check("CallAny add", v, int64(42), err)
		v, err = arbor.CallAny(ctx, c, "split", "x y", " ")
		check("CallAny split", v, []any{"x", "y"}, err)

		// Raw msgpack: fixarray(2), 7, 8.
		raw, err := arbor.CallRaw(ctx, c, "add", []byte{0x92, 0x07, 0x08})
		check("Invoke add", raw, []byte{0x0f}, err)
	})
}

func TestErrorsCrossTheWire(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		c := start(t, nc, newServer(t)).dial()

		_, err := arbor.Call3[int](ctx, c, "fail", int(arbor.NotFound), "no such user", []byte{1, 2, 3})
		ae := wantCode(t, err, arbor.NotFound)
		if ae.Message != "no such user" || !bytes.Equal(ae.Details, []byte{1, 2, 3}) || !ae.Retryable {
			t.Errorf("got %#v, want message, details and retryable kept", ae)
		}
		if err.Error() != "NotFound: no such user" {
			t.Errorf("Error() = %q", err.Error())
		}
		if !errors.Is(err, arbor.ErrNotFound) {
			t.Error("errors.Is(err, ErrNotFound) is false")
		}
		if errors.Is(err, arbor.ErrInternal) || errors.Is(err, arbor.ErrUnknownMethod) {
			t.Error("a handler's NotFound matches ErrInternal or ErrUnknownMethod")
		}
		if arbor.CodeOf(err) != arbor.NotFound {
			t.Errorf("CodeOf = %v", arbor.CodeOf(err))
		}

		_, err = arbor.Call3[int](ctx, c, "fail", int(arbor.Unauthenticated), "who are you", []byte(nil))
		ae = wantCode(t, err, arbor.Unauthenticated)
		if ae.Retryable || len(ae.Details) != 0 {
			t.Errorf("got %#v, want not retryable, no details", ae)
		}
		if !errors.Is(err, arbor.ErrUnauthenticated) {
			t.Error("errors.Is(err, ErrUnauthenticated) is false")
		}

		_, err = arbor.Call3[int](ctx, c, "fail", int(arbor.Unavailable), "try later", []byte(nil))
		wantCode(t, err, arbor.Unavailable)
		if !errors.Is(err, arbor.ErrUnavailable) || !errors.Is(err, arbor.ErrConnection) {
			t.Errorf("Unavailable: errors.Is ErrUnavailable %v, ErrConnection %v",
				errors.Is(err, arbor.ErrUnavailable), errors.Is(err, arbor.ErrConnection))
		}

		_, err = arbor.Call1[int](ctx, c, "goerr", "canceled")
		wantCode(t, err, arbor.Canceled)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, arbor.ErrCanceled) {
			t.Errorf("%v: not context.Canceled / ErrCanceled", err)
		}

		_, err = arbor.Call1[int](ctx, c, "goerr", "deadline")
		wantCode(t, err, arbor.DeadlineExceeded, "waiting")
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, arbor.ErrDeadlineExceeded) || !errors.Is(err, arbor.ErrTimeout) {
			t.Errorf("%v: not context.DeadlineExceeded / ErrDeadlineExceeded / ErrTimeout", err)
		}

		_, err = arbor.Call1[int](ctx, c, "goerr", "wrapped")
		wantCode(t, err, arbor.PermissionDenied, "not yours")
		if !errors.Is(err, arbor.ErrPermissionDenied) {
			t.Errorf("%v: not ErrPermissionDenied", err)
		}

		_, err = arbor.Call1[int](ctx, c, "goerr", "x")
		wantCode(t, err, arbor.Unknown, "plain failure: x")
	})
}

func TestUnknownFunction(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		c := start(t, nc, newServer(t)).dial()
		_, err := arbor.Call1[int](ctx, c, "no.such.fn", 1)
		// As in gRPC: Unimplemented, not NotFound (which a key-value
		// service uses for a missing key).
		wantCode(t, err, arbor.Unimplemented, `"no.such.fn"`)
		if !errors.Is(err, arbor.ErrUnimplemented) || errors.Is(err, arbor.ErrNotFound) {
			t.Errorf("%v: want ErrUnimplemented, not ErrNotFound", err)
		}
		if !errors.Is(err, arbor.ErrUnknownMethod) {
			t.Fatalf("category lost across the wire: %v: errors.Is(err, ErrUnknownMethod) is false", err)
		}
		// The connection is still good.
		if n, err := arbor.Call2[int](ctx, c, "add", 1, 1); err != nil || n != 2 {
			t.Fatalf("add after unknown function: %v, %v", n, err)
		}
	})
}

func TestBadArguments(t *testing.T) {
	eachNet(t, func(t *testing.T, nc netCase) {
		ctx := testContext(t)
		c := start(t, nc, newServer(t)).dial()

		// Wrong count: the error names the count and the types.
		_, err := arbor.Call1[int](ctx, c, "add", 1)
		wantCode(t, err, arbor.InvalidArgument, "add", "2 argument(s)", "int, int", "got 1")
		_, err = arbor.CallAny(ctx, c, "add", 1, 2, 3)
		wantCode(t, err, arbor.InvalidArgument, "add", "2 argument(s)", "got 3")
		_, err = arbor.Call0[string](ctx, c, "join")
		wantCode(t, err, arbor.InvalidArgument, "join", "3 argument(s)", "string, string, string", "got 0")
		_, err = arbor.Call1[string](ctx, c, "hello", 1)
		wantCode(t, err, arbor.InvalidArgument, "hello", "0 argument(s)", "got 1")

		// Wrong type: the error names the argument's index and type.
		_, err = arbor.Call2[int](ctx, c, "add", 1, "x")
		ae := wantCode(t, err, arbor.InvalidArgument, "add", "argument 1", "int")
		if !errors.Is(err, arbor.ErrInvalidArgument) {
			t.Errorf("%v: not ErrInvalidArgument", err)
		}
		t.Logf("wrong type: %s", ae.Message)
		_, err = arbor.CallAny(ctx, c, "add", "one", 2)
		wantCode(t, err, arbor.InvalidArgument, "add", "argument 0", "int")
		_, err = arbor.Call1[Shape](ctx, c, "shape", 7)
		wantCode(t, err, arbor.InvalidArgument, "shape", "argument 0", "Rect")
		_, err = arbor.Call1[Shape](ctx, c, "shape", map[string]any{"Name": 1})
		wantCode(t, err, arbor.InvalidArgument, "shape", "argument 0", "Rect")
		_, err = arbor.Call3[string](ctx, c, "join", "a", "b", 3.5)
		wantCode(t, err, arbor.InvalidArgument, "join", "argument 2", "string")
		_, err = arbor.Call1[int](ctx, c, "add", 1<<40) // count checked before types
		wantCode(t, err, arbor.InvalidArgument, "got 1")

		// Not an array at all.
		_, err = arbor.CallRaw(ctx, c, "add", []byte{0x07})
		wantCode(t, err, arbor.InvalidArgument, "add", "array")
		_, err = arbor.CallRaw(ctx, c, "add", nil)
		wantCode(t, err, arbor.InvalidArgument, "add")
		// Bytes after the argument array.
		_, err = arbor.CallRaw(ctx, c, "add", []byte{0x92, 1, 2, 0xc0})
		wantCode(t, err, arbor.InvalidArgument, "add", "1 byte(s) after the argument array")

		// A result of the wrong type is the caller's problem, reported as
		// such: InvalidArgument, not Internal (which reads as a server
		// fault).
		_, err = arbor.Call2[int](ctx, c, "split", "a b", " ")
		wantCode(t, err, arbor.InvalidArgument, "split", "decoding the result as int")
		if !errors.Is(err, arbor.ErrSerialization) {
			t.Errorf("%v: not ErrSerialization", err)
		}

		// The connection survives all of it.
		if n, err := arbor.Call2[int](ctx, c, "add", 20, 22); err != nil || n != 42 {
			t.Fatalf("add after bad calls: %v, %v", n, err)
		}
	})
}

// TestBadArgumentReflectiveType sends a string where a handler wants a
// slice, which the reflective (msgpack library) decoder handles.
func TestBadArgumentReflectiveType(t *testing.T) {
	ctx := testContext(t)
	c := start(t, netCases[3], newServer(t)).dial()
	_, err := arbor.Call1[int](ctx, c, "sum", "not a slice")
	wantCode(t, err, arbor.InvalidArgument, "sum", "argument 0", "[]int")
}

func TestCatalog(t *testing.T) {
	ctx := testContext(t)
	srv := newServer(t)
	err := arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return 0, nil })
	wantCode(t, err, arbor.AlreadyExists, `"add"`)
	err = arbor.Handle0(srv, arbor.CatalogFunction, func(ctx context.Context) (int, error) { return 0, nil })
	wantCode(t, err, arbor.InvalidArgument, "reserved")
	err = arbor.Handle0(srv, "", func(ctx context.Context) (int, error) { return 0, nil })
	wantCode(t, err, arbor.InvalidArgument)

	c := start(t, netCases[3], srv).dial()
	fs, err := c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fs, srv.Catalog()) {
		t.Errorf("client catalog %v, server's %v", fs, srv.Catalog())
	}
	ids := make([]string, len(fs))
	byID := map[string]arbor.FunctionInfo{}
	for i, f := range fs {
		ids[i] = f.ID
		byID[f.ID] = f
	}
	want := []string{"add", "echo", "fail", "goerr", "hello", "join", "negate", "panic", "shape", "split", "sum"}
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
	for id, w := range map[string]arbor.FunctionInfo{
		"add":   {ID: "add", Args: []string{"int", "int"}, Result: "int"},
		"hello": {ID: "hello", Args: []string{}, Result: "string"},
		"echo":  {ID: "echo", Args: []string{"bytes"}, Result: "bytes"},
		"sum":   {ID: "sum", Args: []string{"[]int"}, Result: "int"},
		"split": {ID: "split", Args: []string{"string", "string"}, Result: "[]string"},
		"shape": {ID: "shape", Args: []string{"arbor_test.Rect"}, Result: "arbor_test.Shape"},
	} {
		got := byID[id]
		if got.ID != w.ID || !slices.Equal(got.Args, w.Args) || got.Result != w.Result {
			t.Errorf("%s: got %+v, want %+v", id, got, w)
		}
	}
	if s := byID["add"].String(); s != "add(int, int) int" {
		t.Errorf("String() = %q", s)
	}
	// Functions registered while serving show up at once.
	must(t, arbor.Handle0(srv, "late", func(ctx context.Context) (bool, error) { return true, nil }))
	if ok, err := arbor.Call0[bool](ctx, c, "late"); err != nil || !ok {
		t.Fatalf("late: %v %v", ok, err)
	}
	if fs, err = c.Catalog(ctx); err != nil || len(fs) != len(want)+1 {
		t.Fatalf("catalog after late registration: %v, %v", fs, err)
	}
}
