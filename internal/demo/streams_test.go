package demo_test

import (
	"context"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/demo"
)

// demoClient serves the demo catalog on loopback TCP and returns a
// client of it; the test's cleanup closes both.
func demoClient(t *testing.T) *arbor.Client {
	t.Helper()
	srv := arbor.NewServer()
	if err := demo.Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := arbor.Dial(context.Background(), l.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStreamingDemo(t *testing.T) {
	ctx := context.Background()
	c := demoClient(t)

	cs, err := arbor.CallServerStream[int](ctx, c, "count", 5)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for {
		v, err := cs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if len(got) != 5 || got[0] != 1 || got[4] != 5 {
		t.Fatalf("count 5: %v", got)
	}
	cs, _ = arbor.CallServerStream[int](ctx, c, "count", -1)
	if _, err := cs.Recv(); !errors.Is(err, arbor.ErrInvalidArgument) {
		t.Fatalf("count -1: %v", err)
	}

	ss, err := arbor.OpenClientStream[int, int](ctx, c, "sum")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		ss.Send(i)
	}
	if total, err := ss.CloseAndRecv(); err != nil || total != 55 {
		t.Fatalf("sum: %d %v", total, err)
	}

	bs, err := arbor.OpenBidiStream[string, string](ctx, c, "chat")
	if err != nil {
		t.Fatal(err)
	}
	bs.Send("hello")
	if m, err := bs.Recv(); err != nil || m != "HELLO" {
		t.Fatalf("chat: %q %v", m, err)
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("chat end: %v", err)
	}
}

// sum fails with OutOfRange when the total does not fit an int, as add
// does, instead of wrapping around.
func TestSumOverflow(t *testing.T) {
	ctx := context.Background()
	c := demoClient(t)
	ss, err := arbor.OpenClientStream[int, int](ctx, c, "sum")
	if err != nil {
		t.Fatal(err)
	}
	ss.Send(math.MaxInt)
	ss.Send(1)
	if total, err := ss.CloseAndRecv(); !errors.Is(err, arbor.ErrOutOfRange) {
		t.Fatalf("sum of MaxInt and 1 = %d, %v; want OutOfRange", total, err)
	}
}
