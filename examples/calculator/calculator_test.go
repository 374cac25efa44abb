package calculator_test

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/examples/calculator"
	"github.com/arbor-rpc/arbor/internal/testproxy"
)

// Short names for the expression builders.
var (
	lit   = calculator.Lit
	call  = calculator.Call
	param = calculator.Param
	prev  = calculator.Previous
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server starts a calculator server on TCP and returns its address.
func server(t *testing.T, opts ...arbor.ServerOption) string {
	t.Helper()
	srv := arbor.NewServer(append([]arbor.ServerOption{calculator.Bootstrap()}, opts...)...)
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return l.URL()
}

func dial(t *testing.T, url string, opts ...arbor.ClientOption) *arbor.Client {
	t.Helper()
	c, err := arbor.Dial(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// open connects to a new calculator server and opens a session.
func open(t *testing.T) (context.Context, *calculator.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	s := calculator.Open(ctx, dial(t, server(t)))
	t.Cleanup(func() { s.Close() })
	return ctx, s
}

func expect(t *testing.T, what string, r *calculator.Result, want float64) {
	t.Helper()
	got, err := r.Wait()
	if err != nil || got != want {
		t.Fatalf("%s = %v (err %v), want %v", what, got, err, want)
	}
}

// powFunction is the client's own Function (the sample's PowerFunction);
// calls counts the server's calls back into it.
func powFunction(calls *atomic.Int32) *calculator.Function {
	return calculator.NewFunction("pow", 2, func(ctx context.Context, p []float64) (float64, error) {
		calls.Add(1)
		return math.Pow(p[0], p[1]), nil
	})
}

// ---- the sample client's checks, each in one network round trip (two
// for the callback); TestRoundTrips measures that. Each closes what it
// made when it ends: a capability left to the garbage collector is
// released whenever that runs, a frame in the middle of a later step's
// round trip. ----

// closeAll closes cs (Values and Functions), for a step to defer.
func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		c.Close()
	}
}

func literal(ctx context.Context, t *testing.T, s *calculator.Session) {
	v := s.Evaluate(ctx, lit(123))
	defer v.Close()
	expect(t, "123", v.Read(ctx), 123)
}

func addAndSubtract(ctx context.Context, t *testing.T, s *calculator.Session) {
	add := s.Operator(ctx, calculator.Add)
	subtract := s.Operator(ctx, calculator.Subtract)
	v := s.Evaluate(ctx, call(subtract, call(add, lit(123), lit(45)), lit(67)))
	defer closeAll(add, subtract, v)
	expect(t, "123 + 45 - 67", v.Read(ctx), 101)
}

func pipelinedEvaluations(ctx context.Context, t *testing.T, s *calculator.Session) {
	add := s.Operator(ctx, calculator.Add)
	multiply := s.Operator(ctx, calculator.Multiply)
	product := s.Evaluate(ctx, call(multiply, lit(4), lit(6)))
	// product is used before evaluate has returned it.
	v3 := s.Evaluate(ctx, call(add, prev(product), lit(3)))
	v5 := s.Evaluate(ctx, call(add, prev(product), lit(5)))
	sum := s.Evaluate(ctx, call(add, lit(4), lit(6)))
	v7 := s.Evaluate(ctx, call(multiply, prev(sum), lit(7)))
	defer closeAll(add, multiply, product, v3, v5, sum, v7)
	add3, add5, times7 := v3.Read(ctx), v5.Read(ctx), v7.Read(ctx)
	expect(t, "4 * 6 + 3", add3, 27)
	expect(t, "4 * 6 + 5", add5, 29)
	expect(t, "(4 + 6) * 7", times7, 70)
}

func definingFunctions(ctx context.Context, t *testing.T, s *calculator.Session) {
	add := s.Operator(ctx, calculator.Add)
	multiply := s.Operator(ctx, calculator.Multiply)
	// f(x, y) = x * 100 + y
	f := s.DefFunction(ctx, 2, call(add, call(multiply, param(0), lit(100)), param(1)))
	// g(x) = f(x, x + 1) * 2
	g := s.DefFunction(ctx, 1, call(multiply, call(f, param(0), call(add, param(0), lit(1))), lit(2)))
	vf := s.Evaluate(ctx, call(f, lit(12), lit(34)))
	vg := s.Evaluate(ctx, call(g, lit(21)))
	defer closeAll(add, multiply, f, g, vf, vg)
	f1234, g4244 := vf.Read(ctx), vg.Read(ctx)
	expect(t, "f(12, 34)", f1234, 1234)
	expect(t, "g(21)", g4244, 4244)
}

func usingACallback(ctx context.Context, t *testing.T, s *calculator.Session, calls *atomic.Int32) {
	add := s.Operator(ctx, calculator.Add)
	pow := powFunction(calls)
	v := s.Evaluate(ctx, call(pow, lit(2), call(add, lit(4), lit(5))))
	defer closeAll(add, pow, v)
	expect(t, "pow(2, 4 + 5)", v.Read(ctx), 512)
}

func TestEvaluateLiteral(t *testing.T) {
	ctx, s := open(t)
	literal(ctx, t, s)
}

func TestAddAndSubtract(t *testing.T) {
	ctx, s := open(t)
	addAndSubtract(ctx, t, s)
}

func TestPipelinedEvaluations(t *testing.T) {
	ctx, s := open(t)
	pipelinedEvaluations(ctx, t, s)
}

func TestDefiningFunctions(t *testing.T) {
	ctx, s := open(t)
	definingFunctions(ctx, t, s)
	// Functions are capabilities: the client can call them directly too.
	multiply := s.Operator(ctx, calculator.Multiply)
	sq := s.DefFunction(ctx, 1, call(multiply, param(0), param(0)))
	expect(t, "sq.call(9)", sq.Call(ctx, 9), 81)
	expect(t, "multiply.call(6, 7)", multiply.Call(ctx, 6, 7), 42)
}

func TestUsingACallback(t *testing.T) {
	ctx, s := open(t)
	var calls atomic.Int32
	usingACallback(ctx, t, s, &calls)
	if n := calls.Load(); n != 1 {
		t.Fatalf("the server called pow %d times, want 1", n)
	}
	// The client's function inside a function the server defines, and
	// reached through the server's Function capability.
	add := s.Operator(ctx, calculator.Add)
	pow := powFunction(&calls)
	twoTo := s.DefFunction(ctx, 1, call(pow, lit(2), param(0)))
	expect(t, "pow(2, 4 + 4)", s.Evaluate(ctx, call(twoTo, call(add, lit(4), lit(4)))).Read(ctx), 256)
	expect(t, "pow.call(3, 4)", pow.Call(ctx, 3, 4), 81)
	if n := calls.Load(); n != 3 {
		t.Fatalf("the server called pow %d times, want 3", n)
	}
}

func TestErrors(t *testing.T) {
	ctx, s := open(t)
	add := s.Operator(ctx, calculator.Add)
	check := func(what string, r *calculator.Result, code error, text string) {
		t.Helper()
		_, err := r.Wait()
		if !errors.Is(err, code) || !strings.Contains(err.Error(), text) {
			t.Fatalf("%s: got %v, want %v containing %q", what, err, code, text)
		}
	}
	check("unknown operator", s.Operator(ctx, "modulo").Call(ctx, 1, 2), arbor.ErrInvalidArgument, `unknown operator "modulo"`)
	check("operator arity", s.Evaluate(ctx, call(add, lit(1))).Read(ctx), arbor.ErrInvalidArgument, "add takes 2 parameters, got 1")
	f := s.DefFunction(ctx, 2, call(add, param(0), param(1)))
	check("function arity", s.Evaluate(ctx, call(f, lit(1))).Read(ctx), arbor.ErrInvalidArgument, "wrong number of parameters: got 1, want 2")
	check("parameter outside a function", s.Evaluate(ctx, param(0)).Read(ctx), arbor.ErrInvalidArgument, "parameter 0 out of range")
	check("parameter out of range", s.DefFunction(ctx, 1, param(1)).Call(ctx, 5), arbor.ErrInvalidArgument, "parameter 1 out of range")
	check("unknown kind", s.Evaluate(ctx, calculator.Expression{Kind: "matrix"}).Read(ctx), arbor.ErrInvalidArgument, `unknown expression kind "matrix"`)

	// A failed evaluation breaks the Value, and expressions that use it.
	bad := s.Evaluate(ctx, call(add, lit(1)))
	check("a broken value", s.Evaluate(ctx, call(add, prev(bad), lit(1))).Read(ctx), arbor.ErrInvalidArgument, "add takes 2 parameters")

	// A closed Value cannot be used.
	closed := s.Evaluate(ctx, lit(1))
	closed.Close()
	check("a closed value", s.Evaluate(ctx, prev(closed)).Read(ctx), arbor.ErrFailedPrecondition, "closed reference")

	// A client function that fails fails the evaluation.
	oops := calculator.NewFunction("oops", 0, func(context.Context, []float64) (float64, error) {
		return 0, arbor.NewError(arbor.OutOfRange, "no luck")
	})
	_, err := s.Evaluate(ctx, call(add, call(oops), lit(1))).Read(ctx).Wait()
	if arbor.CodeOf(err) != arbor.OutOfRange || !strings.Contains(err.Error(), "no luck") {
		t.Fatalf("failing callback: %v", err)
	}
	// Dividing by zero is IEEE division, as in the sample.
	divide := s.Operator(ctx, calculator.Divide)
	expect(t, "1 / 0", divide.Call(ctx, 1, 0), math.Inf(1))
}

// A Value of another server, in an expression: the client passes on the
// reference it holds, and this server reads it through the client.
func TestAnotherServersValue(t *testing.T) {
	ctx, s := open(t)
	other := calculator.Open(ctx, dial(t, server(t)))
	defer other.Close()
	foreign := other.Evaluate(ctx, lit(20))
	defer foreign.Close()
	add := s.Operator(ctx, calculator.Add)
	expect(t, "20 (from the other server) + 1", s.Evaluate(ctx, call(add, prev(foreign), lit(1))).Read(ctx), 21)
}

// Closing a Function keeps what was defined with it working, and closing
// releases what the server retains for the client.
func TestClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The server keeps at most 20 answers for the client: the loop below
	// fails unless closing releases them.
	s := calculator.Open(ctx, dial(t, server(t, arbor.WithLimits(arbor.Limits{MaxRetainedAnswers: 20}))))
	defer s.Close()
	add := s.Operator(ctx, calculator.Add)
	inc := s.DefFunction(ctx, 1, call(add, param(0), lit(1)))
	v := s.Evaluate(ctx, lit(41))
	expect(t, "41", v.Read(ctx), 41)
	if err := add.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, "inc(41) after add was closed", inc.Call(ctx, 41), 42)
	for i := range 100 {
		v := s.Evaluate(ctx, call(inc, lit(float64(i))))
		expect(t, "inc(i)", v.Read(ctx), float64(i+1))
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// ---- round trips ----

// fastest runs f n times and returns its shortest run: scheduling noise
// only ever adds time.
func fastest(n int, f func()) time.Duration {
	best := time.Duration(math.MaxInt64)
	for range n {
		start := time.Now()
		f()
		best = min(best, time.Since(start))
	}
	return best
}

// Each of the sample's steps takes the round trips the sample says (one;
// two with the callback), counted at a proxy on the link, and a chain of
// dependent calls sent with Go and PipelineRef takes one round trip where
// the same calls awaited one by one take four.
func TestRoundTrips(t *testing.T) {
	url := server(t)
	// 100 ms each way, and the proxy does not count the client's RELEASE
	// frames as asking (a Wait's RELEASE, sent after the first answer of a
	// burst, used to make a step two round trips on a loaded machine when
	// the server's last answer of the burst came later).
	proxy := testproxy.Start(t, strings.TrimPrefix(url, "tcp://"), 100*time.Millisecond)
	c := dial(t, proxy.URL, arbor.WithKeepAlive(-1, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	trips := func(f func()) int64 {
		before := proxy.RoundTrips()
		f()
		return proxy.RoundTrips() - before
	}

	s := calculator.Open(ctx, c)
	defer s.Close()
	v := s.Evaluate(ctx, lit(1))
	expect(t, "1", v.Read(ctx), 1)
	if n := trips(func() { expect(t, "1", v.Read(ctx), 1) }); n != 1 {
		t.Errorf("read() on an existing Value: %d round trips, want 1", n)
	}

	var calls atomic.Int32
	for _, step := range []struct {
		name  string
		trips int64
		run   func(context.Context, *testing.T, *calculator.Session)
	}{
		{"literal", 1, literal},
		{"add and subtract", 1, addAndSubtract},
		{"pipelined evaluations", 1, pipelinedEvaluations},
		{"defining functions", 1, definingFunctions},
		{"callback", 2, func(ctx context.Context, t *testing.T, s *calculator.Session) { usingACallback(ctx, t, s, &calls) }},
	} {
		if n := trips(func() { step.run(ctx, t, s) }); n != step.trips {
			t.Errorf("%s: %d round trips, the sample says %d", step.name, n, step.trips)
		}
	}

	// The same chain by hand: get the operators, evaluate (4 + 6) * 7 with
	// them, read the value.
	calc, err := c.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer calc.Close()
	expr := func(add, mul *arbor.Ref) calculator.Expression {
		return calculator.Expression{Kind: calculator.KindCall, Function: mul, Params: []calculator.Expression{
			{Kind: calculator.KindCall, Function: add, Params: []calculator.Expression{lit(4), lit(6)}}, lit(7)}}
	}
	pipelined := trips(func() {
		addP := arbor.Go1[*arbor.Ref](ctx, calc, "getOperator", calculator.Add)
		mulP := arbor.Go1[*arbor.Ref](ctx, calc, "getOperator", calculator.Multiply)
		add, mul := arbor.PipelineRef(addP), arbor.PipelineRef(mulP)
		valP := arbor.Go1[*arbor.Ref](ctx, calc, "evaluate", expr(add, mul))
		val := arbor.PipelineRef(valP)
		x, err := arbor.Go0[float64](ctx, val, "read").Wait()
		if err != nil || x != 70 {
			t.Fatalf("pipelined (4 + 6) * 7 = %v, %v", x, err)
		}
		for _, p := range []*arbor.Promise[*arbor.Ref]{addP, mulP, valP} {
			p.Release()
		}
		add.Close()
		mul.Close()
		val.Close()
	})
	blocking := trips(func() {
		add, err := arbor.Call1[*arbor.Ref](ctx, calc, "getOperator", calculator.Add)
		if err != nil {
			t.Fatal(err)
		}
		defer add.Close()
		mul, err := arbor.Call1[*arbor.Ref](ctx, calc, "getOperator", calculator.Multiply)
		if err != nil {
			t.Fatal(err)
		}
		defer mul.Close()
		val, err := arbor.Call1[*arbor.Ref](ctx, calc, "evaluate", expr(add, mul))
		if err != nil {
			t.Fatal(err)
		}
		defer val.Close()
		if x, err := arbor.Call0[float64](ctx, val, "read"); err != nil || x != 70 {
			t.Fatalf("blocking (4 + 6) * 7 = %v, %v", x, err)
		}
	})
	t.Logf("getOperator ×2 → evaluate → read: pipelined %d round trip(s), blocking %d", pipelined, blocking)
	if pipelined != 1 || blocking != 4 {
		t.Errorf("pipelined chain: %d round trips (want 1); blocking: %d (want 4)", pipelined, blocking)
	}
}
