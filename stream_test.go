package arbor_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

func streamServer(t *testing.T) *arbor.Client {
	t.Helper()
	srv := arbor.NewServer()
	mustS(t, arbor.HandleServerStream(srv, "count", func(ctx context.Context, n int, out *arbor.Sender[int]) error {
		for i := 1; i <= n; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		if n < 0 {
			return arbor.Errorf(arbor.InvalidArgument, "n is negative")
		}
		return nil
	}))
	mustS(t, arbor.HandleClientStream(srv, "sum", func(ctx context.Context, in *arbor.Receiver[int]) (int, error) {
		sum := 0
		for {
			v, err := in.Recv()
			if err == io.EOF {
				return sum, nil
			}
			if err != nil {
				return 0, err
			}
			sum += v
		}
	}))
	mustS(t, arbor.HandleBidiStream(srv, "chat", func(ctx context.Context, in *arbor.Receiver[string], out *arbor.Sender[string]) error {
		for {
			m, err := in.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := out.Send(strings.ToUpper(m)); err != nil {
				return err
			}
		}
	}))
	mustS(t, arbor.HandleServerStream(srv, "forever", func(ctx context.Context, _ int, out *arbor.Sender[int]) error {
		for i := 0; ; i++ {
			if err := out.Send(i); err != nil {
				return err
			}
		}
	}))
	l, err := transport.Listen(context.Background(), "tcp://127.0.0.1:0", nil)
	mustS(t, err)
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	c, err := arbor.Dial(context.Background(), l.URL())
	mustS(t, err)
	t.Cleanup(func() { c.Close(); srv.Close(); <-done })
	return c
}

func TestServerStream(t *testing.T) {
	c := streamServer(t)
	s, err := arbor.CallServerStream[int](context.Background(), c, "count", 500)
	mustS(t, err)
	for want := 1; want <= 500; want++ {
		got, err := s.Recv()
		if err != nil || got != want {
			t.Fatalf("message %d: %d %v", want, got, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// An error after some messages arrives typed, after them.
	s, err = arbor.CallServerStream[int](context.Background(), c, "count", -1)
	mustS(t, err)
	if _, err := s.Recv(); !errors.Is(err, arbor.ErrInvalidArgument) || !strings.Contains(err.Error(), "n is negative") {
		t.Fatalf("got %v", err)
	}
}

func TestClientStream(t *testing.T) {
	c := streamServer(t)
	s, err := arbor.OpenClientStream[int, int](context.Background(), c, "sum")
	mustS(t, err)
	for i := 1; i <= 1000; i++ {
		mustS(t, s.Send(i))
	}
	if sum, err := s.CloseAndRecv(); err != nil || sum != 500500 {
		t.Fatalf("sum %d %v", sum, err)
	}
}

func TestBidiStream(t *testing.T) {
	c := streamServer(t)
	s, err := arbor.OpenBidiStream[string, string](context.Background(), c, "chat")
	mustS(t, err)
	words := []string{"alpha", "beta", "gamma"}
	go func() {
		for _, w := range words {
			if err := s.Send(w); err != nil {
				t.Errorf("send: %v", err)
			}
		}
		s.CloseSend()
	}()
	for _, w := range words {
		got, err := s.Recv()
		if err != nil || got != strings.ToUpper(w) {
			t.Fatalf("got %q %v", got, err)
		}
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func TestStreamCancel(t *testing.T) {
	c := streamServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := arbor.CallServerStream[int](ctx, c, "forever", 0)
	mustS(t, err)
	for i := 0; i < 10; i++ {
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	for {
		_, err := s.Recv()
		if err == nil {
			continue // messages already buffered
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		break
	}
	// Close without cancel abandons a stream too.
	s, err = arbor.CallServerStream[int](context.Background(), c, "forever", 0)
	mustS(t, err)
	s.Recv()
	s.Close()
}

func TestStreamKindsAndMisuse(t *testing.T) {
	c := streamServer(t)
	infos, err := c.Catalog(context.Background())
	mustS(t, err)
	kinds := map[string]arbor.Kind{}
	for _, f := range infos {
		kinds[f.ID] = f.Kind
	}
	if kinds["count"] != arbor.KindServerStream || kinds["sum"] != arbor.KindClientStream || kinds["chat"] != arbor.KindBidiStream {
		t.Fatalf("kinds: %v", kinds)
	}
	_, err = arbor.Call1[int](context.Background(), c, "count", 3)
	if !errors.Is(err, arbor.ErrInvalidArgument) || !strings.Contains(err.Error(), "open a stream") {
		t.Fatalf("unary call of a stream function: %v", err)
	}
}

func mustS(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// []byte messages are handed over without a copy; each must still be its
// own buffer, untouched by later messages.
func TestByteStreamMessagesAreIndependent(t *testing.T) {
	srv := arbor.NewServer()
	mustS(t, arbor.HandleServerStream(srv, "blocks", func(ctx context.Context, n int, out *arbor.Sender[[]byte]) error {
		for i := 0; i < n; i++ {
			if err := out.Send([]byte(strings.Repeat(string(rune('a'+i%26)), 100))); err != nil {
				return err
			}
		}
		return out.Send(nil)
	}))
	l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
	mustS(t, err)
	defer srv.Close()
	c, err := arbor.Dial(context.Background(), l.URL())
	mustS(t, err)
	defer c.Close()
	s, err := arbor.CallServerStream[[]byte](context.Background(), c, "blocks", 50)
	mustS(t, err)
	var got [][]byte
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		mustS(t, err)
		got = append(got, m)
	}
	if len(got) != 51 || got[50] != nil {
		t.Fatalf("got %d messages, last %v", len(got), got[len(got)-1])
	}
	for i, m := range got[:50] {
		if string(m) != strings.Repeat(string(rune('a'+i%26)), 100) {
			t.Fatalf("message %d changed: %q", i, m)
		}
	}
}
