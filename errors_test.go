package arbor_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/testcerts"
	"github.com/arbor-rpc/arbor/transport"
)

// Every RpcNet error category is reachable with errors.Is, from a real
// failure of that kind.
func TestErrorCategories(t *testing.T) {
	ctx := context.Background()
	srv := arbor.NewServer()
	mustS(t, arbor.Handle0(srv, "text", func(ctx context.Context) (string, error) { return "x", nil }))
	mustS(t, arbor.Handle1(srv, "slow", func(ctx context.Context, ms int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	}))
	mustS(t, arbor.HandleServerStream(srv, "broken", func(ctx context.Context, _ int, out *arbor.Sender[int]) error {
		out.Send(1)
		return errors.New("disk unplugged")
	}))
	files := testcerts.Write(t, t.TempDir())
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	mustS(t, err)
	tl, err := transport.Listen(ctx, "tls://127.0.0.1:0", &transport.Config{CertFile: files.ServerCert, KeyFile: files.ServerKey})
	mustS(t, err)
	go srv.Serve(tl)
	defer srv.Close()
	c, err := arbor.Dial(ctx, l.URL())
	mustS(t, err)
	defer c.Close()

	check := func(name string, err error, cat error) {
		t.Helper()
		if !errors.Is(err, cat) {
			t.Errorf("%s: %v is not %v", name, err, cat)
		}
	}

	// Connection: nothing listens there.
	dead, _ := transport.Listen(ctx, "tcp://127.0.0.1:0", nil)
	deadURL := dead.URL()
	dead.Close()
	_, err = arbor.Dial(ctx, deadURL)
	check("dial refused", err, arbor.ErrConnection)

	// TLS: a server certificate nobody vouches for.
	_, err = arbor.Dial(ctx, tl.URL())
	check("untrusted server", err, arbor.ErrTLS)

	// Config: an address with an unknown scheme.
	_, err = arbor.Dial(ctx, "carrier-pigeon://coop:1")
	check("bad address", err, arbor.ErrConfig)

	// IO: a certificate file that does not exist.
	_, err = arbor.Dial(ctx, tl.URL(), arbor.WithTransport(&transport.Config{CAFile: filepath.Join(t.TempDir(), "missing.pem")}))
	check("missing CA file", err, arbor.ErrIO)

	// Serialization: a result that is not the caller's type.
	_, err = arbor.Call0[[]int](ctx, c, "text")
	check("wrong result type", err, arbor.ErrSerialization)

	// Timeout: a deadline that passes.
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = arbor.Call1[int](tctx, c, "slow", 0)
	cancel()
	check("deadline", err, arbor.ErrTimeout)

	// Unknown method.
	_, err = arbor.Call0[int](ctx, c, "nope")
	check("unknown function", err, arbor.ErrUnknownMethod)

	// Stream: a stream that fails midway.
	s, err := arbor.CallServerStream[int](ctx, c, "broken", 0)
	mustS(t, err)
	for err == nil {
		_, err = s.Recv()
	}
	if err == io.EOF {
		t.Fatal("broken stream ended cleanly")
	}
	check("stream failure", err, arbor.ErrStream)
}
