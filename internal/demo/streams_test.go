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

func TestStreamingDemo(t *testing.T) {
	ctx := context.Background()
	srv := arbor.NewServer()
	if err := demo.Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := arbor.Dial(ctx, l.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

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
	srv := arbor.NewServer()
	if err := demo.Register(srv); err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := arbor.Dial(ctx, l.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
