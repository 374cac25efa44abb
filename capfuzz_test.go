package arbor

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// FuzzCapabilityTables sends calls whose capability tables and
// arguments are arbitrary to a real server, through a real connection:
// whatever they hold, the server answers (or refuses) each, keeps
// serving, and ends with exactly the exports it had.
func FuzzCapabilityTables(f *testing.F) {
	mine := wire.CapDescriptor{Kind: wire.CapReceiverHosted, ID: 1}
	seed := func(caps []wire.CapDescriptor, args []byte) {
		f.Add(wire.AppendCapTable(nil, caps), args)
	}
	seed([]wire.CapDescriptor{mine}, capArgs(0, 0))
	seed([]wire.CapDescriptor{mine}, capArgs(0, 5))
	seed([]wire.CapDescriptor{mine, {Kind: wire.CapSenderHosted, ID: 3}}, capArgs(1, 0))
	seed([]wire.CapDescriptor{mine, {Kind: wire.CapReceiverHosted, ID: 2}}, capArgs(0, 1))
	seed([]wire.CapDescriptor{mine, {Kind: wire.CapReceiverAnswer, ID: 1, Path: wire.AppendPath(nil, []wire.PathSegment{{Key: "x"}})}}, capArgs(0, 1))
	nested := value.AppendArrayHeader(nil, 1)
	nested = value.AppendMapHeader(nested, 2)
	nested = value.AppendString(nested, "List")
	nested = value.AppendArrayHeader(nested, 2)
	nested = value.AppendExt(nested, wire.CapabilityExt, []byte{0})
	nested = value.AppendExt(nested, wire.CapabilityExt, []byte{1})
	nested = value.AppendString(nested, "ByID")
	nested = value.AppendMapHeader(nested, 1)
	nested = value.AppendString(nested, "k")
	nested = value.AppendExt(nested, wire.CapabilityExt, []byte{0x80}) // a truncated index
	seed([]wire.CapDescriptor{mine, {Kind: wire.CapSenderHosted, ID: 9}}, nested)
	f.Add([]byte{}, []byte{0x91, 0xc0})

	var once sync.Once
	var raw *conn.Conn
	var srvConn *conn.Conn
	var keep *Ref
	var cleanup func()
	f.Cleanup(func() {
		if cleanup != nil {
			cleanup()
		}
	})
	f.Fuzz(func(t *testing.T, table, args []byte) {
		once.Do(func() {
			srv := NewServer()
			Handle1(srv, "counter", func(ctx context.Context, start int) (*Service, error) { return counter(start), nil })
			Handle1(srv, "take", func(ctx context.Context, p pairIn) (int, error) {
				p.A.Close()
				p.B.Close()
				return 0, nil
			})
			Handle1(srv, "nested", func(ctx context.Context, n nestedIn) (int, error) {
				for _, r := range n.List {
					r.Close()
				}
				for _, r := range n.ByID {
					r.Close()
				}
				return 0, nil
			})
			conns := make(chan *conn.Conn, 1)
			srv.onConn = func(c *conn.Conn) { conns <- c }
			l, err := srv.Listen(context.Background(), "tcp://127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			c, err := Dial(context.Background(), l.URL())
			if err != nil {
				t.Fatal(err)
			}
			if keep, err = Call1[*Ref](context.Background(), c, "counter", 0); err != nil {
				t.Fatal(err)
			}
			srvConn, raw = <-conns, c.cur.Load()
			cleanup = func() { keep.Close(); c.Close(); srv.Close() }
		})
		caps, err := wire.ParseCapTable(nil, table)
		if err != nil || len(caps) > 16 {
			return // the wire decoder refuses it (its own fuzz target covers that)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, fn := range []string{"take", "nested"} {
			rep, err := raw.Call(ctx, &conn.Outgoing{Function: fn, Args: args, Caps: caps})
			if err == nil {
				rep.Release()
			} else if ctx.Err() != nil {
				t.Fatalf("%s: the server did not answer: %v", fn, err)
			}
		}
		if v, err := Call1[int](ctx, keep, "inc", 0); err != nil || v != 0 {
			t.Fatalf("the real export after the call: %d %v", v, err)
		}
		if n := exportsOn(srvConn); n != 1 {
			t.Fatalf("the server exports %d services, want its 1", n)
		}
	})
}
