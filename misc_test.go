package arbor_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
)

// A result that does not decode as the caller's type is an error on the
// client, never a panic.
func TestResultTypeMismatchOnClient(t *testing.T) {
	_, c := authServer(t, nil)
	_, err := arbor.Call0[[]int](context.Background(), c, "whoami")
	if !errors.Is(err, arbor.ErrSerialization) || arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Fatalf("got %v", err)
	}
}

// A dial that hangs (the server never answers the handshake) holds up
// only callers whose own deadlines allow it, and Close ends it.
func TestDialWaitsWithCallersContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustS(t, err)
	defer l.Close()
	held := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			held <- nc // accepted, never answered
		}
	}()
	defer func() {
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = arbor.Dial(ctx, "tcp://"+l.Addr().String())
	if !errors.Is(err, arbor.ErrDeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Dial took %v with a 100ms deadline", d)
	}
}
