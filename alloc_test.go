package arbor_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// maxEchoAllocs is the budget for one unary echo of 64 bytes, client and
// server together (they share the process): the argument the handler
// receives, the result the caller receives, and the handler's context.
const maxEchoAllocs = 3

func TestEchoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	if testing.Short() {
		t.Skip("short")
	}
	// Real sockets only: the mem: pipe allocates its own wake-up channels.
	for _, nc := range []netCase{netCases[0], netCases[1]} { // tcp, unix
		t.Run(nc.name, func(t *testing.T) {
			ctx := context.Background()
			c := start(t, nc, newServer(t)).dial()
			in := make([]byte, 64)
			for i := range in {
				in[i] = byte(i * 7)
			}
			var failed error
			echo := func() {
				out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
				if err == nil && !bytes.Equal(out, in) {
					err = fmt.Errorf("echoed %x, sent %x", out, in)
				}
				if err != nil && failed == nil {
					failed = err
				}
			}
			for range 100 { // warm the pools and the worker goroutines
				echo()
			}
			allocs := testing.AllocsPerRun(2000, echo)
			if failed != nil {
				t.Fatal(failed)
			}
			t.Logf("%s: %.2f allocations per 64-byte echo (client+server)", nc.name, allocs)
			if allocs > maxEchoAllocs {
				t.Errorf("%s: %.2f allocations per echo, want at most %d", nc.name, allocs, maxEchoAllocs)
			}
		})
	}
}
