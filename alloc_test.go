package arbor_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// maxEchoAllocs is the budget for one unary echo of 64 bytes, client and
// server together (they share the process).
const maxEchoAllocs = 6

func TestEchoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	if testing.Short() {
		t.Skip("short")
	}
	for _, nc := range []netCase{netCases[3], netCases[0]} { // mem, tcp
		t.Run(nc.name, func(t *testing.T) {
			ctx := context.Background()
			c := start(t, nc, newServer(t)).dial()
			in := bytes.Repeat([]byte{7}, 64)
			var failed error
			echo := func() {
				out, err := arbor.Call1[[]byte](ctx, c, "echo", in)
				if err != nil || len(out) != 64 {
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
