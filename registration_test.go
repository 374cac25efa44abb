package arbor_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/arbor-rpc/arbor"
)

type noExported struct{ a, b int }

type withChan struct {
	Name string
	C    chan int
}

// Registration refuses what could never be called, naming the problem.
func TestRegistrationValidates(t *testing.T) {
	srv := arbor.NewServer()
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"nil function", arbor.Handle1[int, int](srv, "f", nil), []string{"f", "nil"}},
		{"chan argument", arbor.Handle1(srv, "f", func(ctx context.Context, c chan int) (int, error) { return 0, nil }), []string{"argument 0", "chan"}},
		{"func result", arbor.Handle0(srv, "f", func(ctx context.Context) (func(), error) { return nil, nil }), []string{"result", "func"}},
		{"unsafe pointer", arbor.Handle1(srv, "f", func(ctx context.Context, p unsafe.Pointer) (int, error) { return 0, nil }), []string{"argument 0", "unsafe.Pointer"}},
		{"no exported fields", arbor.Handle1(srv, "f", func(ctx context.Context, v noExported) (int, error) { return 0, nil }), []string{"argument 0", "no exported fields"}},
		{"chan in a field", arbor.Handle2(srv, "f", func(ctx context.Context, a int, v withChan) (int, error) { return 0, nil }), []string{"argument 1", "field C", "chan"}},
		{"service argument", arbor.Handle1(srv, "f", func(ctx context.Context, s *arbor.Service) (int, error) { return 0, nil }), []string{"argument 0", "*arbor.Ref"}},
		{"promise argument", arbor.Handle1(srv, "f", func(ctx context.Context, p *arbor.Promise[int]) (int, error) { return 0, nil }), []string{"argument 0", "promise"}},
		{"reserved prefix", arbor.Handle0(srv, "arbor.mine", func(ctx context.Context) (int, error) { return 0, nil }), []string{"arbor.", "reserved"}},
		{"empty id", arbor.Handle0(srv, "", func(ctx context.Context) (int, error) { return 0, nil }), []string{"empty"}},
		{"invalid UTF-8", arbor.Handle0(srv, "f\xff", func(ctx context.Context) (int, error) { return 0, nil }), []string{"UTF-8"}},
		{"stream of chans", arbor.HandleServerStream(srv, "f", func(ctx context.Context, n int, out *arbor.Sender[chan int]) error { return nil }), []string{"sent", "chan"}},
		{"raw without a function", arbor.HandleRaw(srv, arbor.FunctionInfo{ID: "f"}, nil), []string{"nil"}},
		{"raw stream", arbor.HandleRaw(srv, arbor.FunctionInfo{ID: "f", Kind: arbor.KindBidiStream}, func(ctx context.Context, b []byte) ([]byte, error) { return nil, nil }), []string{"unary"}},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: registered", c.name)
			continue
		}
		if arbor.CodeOf(c.err) != arbor.InvalidArgument {
			t.Errorf("%s: code %v, want InvalidArgument", c.name, arbor.CodeOf(c.err))
		}
		for _, w := range c.want {
			if !strings.Contains(c.err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", c.name, c.err, w)
			}
		}
	}
	if n := len(srv.Catalog()); n != 0 {
		t.Errorf("refused registrations left %d functions in the catalog", n)
	}
	// What the codec carries registers, with its options in the catalog.
	type ok struct {
		Name string `json:"name"`
		Tags map[string][]int
	}
	mustS(t, arbor.Handle1(srv, "fine", func(ctx context.Context, v ok) (*arbor.Service, error) { return nil, nil },
		arbor.WithTitle("Fine"), arbor.Idempotent()))
	f, found := srv.Function("fine")
	if !found || f.Title != "Fine" || !f.Idempotent || f.Kind != arbor.KindUnary {
		t.Errorf("catalog entry %+v", f)
	}
}

// Typed options: a server option given to Dial, or a client option given
// to NewServer, does not compile; an option of both sides works on both.
func TestOptionsAreTyped(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command") // the tests always run with one; but do not fail elsewhere
	}
	root, err := filepath.Abs(".")
	mustS(t, err)
	cases := []struct {
		name, body string
		compiles   bool
		mention    string
	}{
		{"server option to Dial", `arbor.Dial(ctx, "tcp://h:1", arbor.WithBearerAuth(nil))`, false, "does not implement arbor.ClientOption"},
		{"client option to NewServer", `arbor.NewServer(arbor.WithBearerToken("t"))`, false, "does not implement arbor.ServerOption"},
		{"limits on a client", `arbor.Dial(ctx, "tcp://h:1", arbor.WithLimits(arbor.Limits{}))`, false, "does not implement arbor.ClientOption"},
		{"both sides", `arbor.NewServer(arbor.WithLogger(nil), arbor.WithKeepAlive(0, 0)); arbor.Dial(ctx, "tcp://h:1", arbor.WithLogger(nil), arbor.WithBearerToken("t"))`, true, ""},
	}
	for _, c := range cases {
		dir := t.TempDir()
		src := "package main\n\nimport (\n\t\"context\"\n\n\t\"github.com/arbor-rpc/arbor\"\n)\n\nfunc main() {\n\tctx := context.Background()\n\t_ = ctx\n\t" + c.body + "\n}\n"
		file := filepath.Join(dir, "main.go")
		mustS(t, os.WriteFile(file, []byte(src), 0o644))
		cmd := exec.Command(gobin, "build", "-o", os.DevNull, file)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if c.compiles != (err == nil) {
			t.Errorf("%s: compiles=%v, want %v:\n%s", c.name, err == nil, c.compiles, out)
			continue
		}
		if !c.compiles && !strings.Contains(string(out), c.mention) {
			t.Errorf("%s: the compiler said %s", c.name, out)
		}
	}
}

// There is a sentinel for every code, matching errors of that code only.
func TestSentinelForEveryCode(t *testing.T) {
	sentinels := map[arbor.Code]error{
		arbor.Canceled: arbor.ErrCanceled, arbor.Unknown: arbor.ErrUnknown, arbor.InvalidArgument: arbor.ErrInvalidArgument,
		arbor.DeadlineExceeded: arbor.ErrDeadlineExceeded, arbor.NotFound: arbor.ErrNotFound, arbor.AlreadyExists: arbor.ErrAlreadyExists,
		arbor.PermissionDenied: arbor.ErrPermissionDenied, arbor.ResourceExhausted: arbor.ErrResourceExhausted,
		arbor.FailedPrecondition: arbor.ErrFailedPrecondition, arbor.Aborted: arbor.ErrAborted, arbor.OutOfRange: arbor.ErrOutOfRange,
		arbor.Unimplemented: arbor.ErrUnimplemented, arbor.Internal: arbor.ErrInternal, arbor.Unavailable: arbor.ErrUnavailable,
		arbor.DataLoss: arbor.ErrDataLoss, arbor.Unauthenticated: arbor.ErrUnauthenticated,
	}
	for c := arbor.Canceled; c <= arbor.Unauthenticated; c++ {
		s, ok := sentinels[c]
		if !ok {
			t.Errorf("no sentinel for %v", c)
			continue
		}
		err := arbor.Errorf(c, "x")
		for c2, s2 := range sentinels {
			if got := errorsIs(err, s2); got != (c2 == c) {
				t.Errorf("errors.Is(%v error, sentinel of %v) = %v", c, c2, got)
			}
		}
		if parsed, ok := arbor.ParseCode(c.String()); !ok || parsed != c {
			t.Errorf("ParseCode(%q) = %v %v", c.String(), parsed, ok)
		}
		_ = s
	}
}

// Decode errors speak Go: argument, type, field path, what was found.
func TestArgumentErrorsNameFields(t *testing.T) {
	type PutReq struct {
		Key   string
		Value string
	}
	srv := arbor.NewServer()
	mustS(t, arbor.Handle1(srv, "put", func(ctx context.Context, r PutReq) (bool, error) { return true, nil }))
	mustS(t, arbor.Handle1(srv, "putp", func(ctx context.Context, r *PutReq) (bool, error) { return r != nil, nil }))
	c := start(t, netCases[0], srv).dial()
	ctx := testContext(t)
	_, err := arbor.Call1[bool](ctx, c, "put", map[string]any{"Key": "k", "Value": 7})
	wantCode(t, err, arbor.InvalidArgument, "argument 0 (arbor_test.PutReq): field Value: expected string, got int")
	_, err = arbor.Call1[bool](ctx, c, "put", (*PutReq)(nil))
	wantCode(t, err, arbor.InvalidArgument, "argument 0", "expected arbor_test.PutReq, got nil")
	if strings.Contains(err.Error(), "c0") {
		t.Errorf("raw msgpack code in %q", err)
	}
	// A nil pointer where a pointer is taken is just nil.
	if got, err := arbor.Call1[bool](ctx, c, "putp", (*PutReq)(nil)); err != nil || got {
		t.Errorf("nil *PutReq: %v %v", got, err)
	}
	// json tags are honoured, and keys match case-insensitively.
	type Tagged struct {
		Name string `json:"name"`
	}
	mustS(t, arbor.Handle1(srv, "name", func(ctx context.Context, v Tagged) (string, error) { return v.Name, nil }))
	if got, err := arbor.CallAny(ctx, c, "name", map[string]any{"NAME": "x"}); err != nil || got != "x" {
		t.Errorf("case-insensitive json-tagged field: %v %v", got, err)
	}
}

func errorsIs(err, target error) bool {
	type iser interface{ Is(error) bool }
	return err.(iser).Is(target)
}
