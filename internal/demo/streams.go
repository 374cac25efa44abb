package demo

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/arbor-rpc/arbor"
)

// registerStreams adds the streaming demo functions: count (server
// stream), sum (client stream) and chat (bidirectional).
func registerStreams(s *arbor.Server) error {
	return errors.Join(
		arbor.HandleServerStream(s, "count", count),
		arbor.HandleClientStream(s, "sum", sum),
		arbor.HandleBidiStream(s, "chat", chat),
	)
}

// count sends 1, 2, ... n.
func count(ctx context.Context, n int, out *arbor.Sender[int]) error {
	if n < 0 {
		return arbor.Errorf(arbor.InvalidArgument, "count: negative count %d", n)
	}
	for i := 1; i <= n; i++ {
		if err := out.Send(i); err != nil {
			return err
		}
	}
	return nil
}

// sum adds the integers it receives, or fails with OutOfRange as add does.
func sum(ctx context.Context, in *arbor.Receiver[int]) (int, error) {
	total := 0
	for {
		v, err := in.Recv()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return 0, err
		}
		if total, err = add(ctx, total, v); err != nil {
			return 0, err
		}
	}
}

// chat answers every message with its upper-case echo.
func chat(ctx context.Context, in *arbor.Receiver[string], out *arbor.Sender[string]) error {
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
}
