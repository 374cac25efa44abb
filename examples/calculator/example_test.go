package calculator_test

import (
	"context"
	"fmt"
	"math"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/examples/calculator"
)

// The Cap'n Proto sample client, step by step.
func Example() {
	ctx := context.Background()
	srv := arbor.NewServer(calculator.Bootstrap()) // the Calculator is the bootstrap service
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	c, err := arbor.Dial(ctx, l.URL())
	if err != nil {
		panic(err)
	}
	defer c.Close()

	s := calculator.Open(ctx, c)
	defer s.Close()
	lit, call, param, prev := calculator.Lit, calculator.Call, calculator.Param, calculator.Previous
	show := func(what string, r *calculator.Result) {
		x, err := r.Wait()
		fmt.Println(what, "=", x, err)
	}

	// Evaluating a literal: evaluate() then read(), one round trip.
	show("123", s.Evaluate(ctx, lit(123)).Read(ctx))

	// Using add and subtract.
	add := s.Operator(ctx, calculator.Add)
	subtract := s.Operator(ctx, calculator.Subtract)
	multiply := s.Operator(ctx, calculator.Multiply)
	show("123 + 45 - 67", s.Evaluate(ctx, call(subtract, call(add, lit(123), lit(45)), lit(67))).Read(ctx))

	// Pipelining evaluate() calls: the product is used before it exists.
	product := s.Evaluate(ctx, call(multiply, lit(4), lit(6)))
	plus3 := s.Evaluate(ctx, call(add, prev(product), lit(3))).Read(ctx)
	plus5 := s.Evaluate(ctx, call(add, prev(product), lit(5))).Read(ctx)
	show("4 * 6 + 3", plus3)
	show("4 * 6 + 5", plus5)

	// Defining functions.
	f := s.DefFunction(ctx, 2, call(add, call(multiply, param(0), lit(100)), param(1)))                // f(x, y) = x * 100 + y
	g := s.DefFunction(ctx, 1, call(multiply, call(f, param(0), call(add, param(0), lit(1))), lit(2))) // g(x) = f(x, x + 1) * 2
	show("f(12, 34)", s.Evaluate(ctx, call(f, lit(12), lit(34))).Read(ctx))
	show("g(21)", s.Evaluate(ctx, call(g, lit(21))).Read(ctx))

	// Using a callback: the server calls pow, which runs here.
	pow := calculator.NewFunction("pow", 2, func(ctx context.Context, p []float64) (float64, error) {
		return math.Pow(p[0], p[1]), nil
	})
	show("pow(2, 4 + 5)", s.Evaluate(ctx, call(pow, lit(2), call(add, lit(4), lit(5)))).Read(ctx))

	// Output:
	// 123 = 123 <nil>
	// 123 + 45 - 67 = 101 <nil>
	// 4 * 6 + 3 = 27 <nil>
	// 4 * 6 + 5 = 29 <nil>
	// f(12, 34) = 1234 <nil>
	// g(21) = 4244 <nil>
	// pow(2, 4 + 5) = 512 <nil>
}
