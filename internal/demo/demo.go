// Package demo is the small catalog of functions that `arbor serve` offers:
// enough to try the CLI and the wire protocol by hand, and to test them.
//
//	add(int, int) int           the sum
//	concat(string, string) string
//	echo(bytes) bytes           its argument, unchanged
//	sleep(int) int              waits ms milliseconds, returns ms
//	fail(string) struct {}      always fails with Internal and the message
//
// greeter/ adds demo.v1.Greeter, generated from greeter.proto:
//
//	/demo.v1.Greeter/SayHello(demo.v1.HelloRequest) demo.v1.HelloReply
//	/demo.v1.Greeter/SayHellos(demo.v1.HellosRequest) stream demo.v1.HelloReply
//
// trees.go adds the functions of Cradle's example request tree and
// arithmetic at every caching level (see registerTrees). It is not an
// example of a real service; its only state is trees.go's object store.
package demo

import (
	"context"
	"errors"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/demo/greeter"
)

// Register adds the demo functions to s. It fails if one of their ids is
// already registered.
func Register(s *arbor.Server) error {
	return errors.Join(
		arbor.Handle2(s, "add", add, arbor.Idempotent()),
		arbor.Handle2(s, "concat", concat, arbor.Idempotent()),
		arbor.Handle1(s, "echo", echo, arbor.Idempotent()),
		arbor.Handle1(s, "sleep", sleep),
		arbor.Handle1(s, "fail", fail),
		registerTrees(s),    // trees.go: request-tree functions
		registerStreams(s),  // streams.go: count, sum, chat
		greeter.Register(s), // greeter/: the generated demo.v1.Greeter
	)
}

// add is the sum, or OutOfRange when it does not fit an int.
func add(_ context.Context, a, b int) (int, error) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, arbor.Errorf(arbor.OutOfRange, "add: %d + %d overflows int", a, b)
	}
	return s, nil
}

func concat(_ context.Context, a, b string) (string, error) { return a + b, nil }

func echo(_ context.Context, p []byte) ([]byte, error) { return p, nil }

// sleep waits ms milliseconds and returns ms, or returns early when ctx
// ends: DeadlineExceeded if its deadline passed, Canceled otherwise.
func sleep(ctx context.Context, ms int) (int, error) {
	if ms < 0 {
		return 0, arbor.Errorf(arbor.InvalidArgument, "sleep: negative duration %dms", ms)
	}
	d := time.Duration(ms) * time.Millisecond
	if d/time.Millisecond != time.Duration(ms) {
		return 0, arbor.Errorf(arbor.InvalidArgument, "sleep: duration %dms is too long", ms)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ms, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, arbor.Errorf(arbor.DeadlineExceeded, "sleep: deadline exceeded before %dms elapsed", ms)
		}
		return 0, arbor.Errorf(arbor.Canceled, "sleep: canceled before %dms elapsed", ms)
	}
}

// fail always returns an Internal error carrying message.
func fail(_ context.Context, message string) (struct{}, error) {
	return struct{}{}, arbor.NewError(arbor.Internal, message)
}

// RegisterWhoami adds whoami() string to s: the name of the node that
// served the call, so that a user can watch calls spread over a cluster.
func RegisterWhoami(s *arbor.Server, name string) error {
	return arbor.Handle0(s, "whoami", func(context.Context) (string, error) { return name, nil }, arbor.Idempotent())
}
