package arbor_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
)

// A function whose calls are quick comes to run on the connection's
// reader (no hand-off to a worker); one that works longer per call keeps
// running on workers, in parallel.
func TestQuickFunctionsRunOnTheReader(t *testing.T) {
	t.Run("inline", func(t *testing.T) { testQuickOnReader(t, true) })
	t.Run("WithoutInline", func(t *testing.T) { testQuickOnReader(t, false) })
}

func testQuickOnReader(t *testing.T, inline bool) {
	var opts []arbor.ServerOption
	if !inline {
		opts = append(opts, arbor.WithoutInline())
	}
	srv := arbor.NewServer(opts...)
	onReader := func() bool {
		buf := make([]byte, 8<<10)
		return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "conn.(*Conn).runInline")
	}
	var quickInline, slowInline atomic.Int32
	must(t, arbor.Handle1(srv, "quick", func(ctx context.Context, n int) (int, error) {
		// Looking at the stack takes longer than a quick call: only a
		// few calls look, the others keep the function quick.
		if n%16 == 0 && onReader() {
			quickInline.Add(1)
		}
		return n + 1, nil
	}))
	must(t, arbor.Handle1(srv, "slow", func(ctx context.Context, n int) (int, error) {
		if onReader() {
			slowInline.Add(1)
		}
		for end := time.Now().Add(100 * time.Microsecond); time.Now().Before(end); {
		}
		return n + 1, nil
	}))
	c := start(t, netCases[0], srv).dial()
	ctx := context.Background()
	for i := range 2000 {
		for _, fn := range []string{"quick", "slow"} {
			if got, err := arbor.Call1[int](ctx, c, fn, i); err != nil || got != i+1 {
				t.Fatalf("%s(%d) = %d, %v", fn, i, got, err)
			}
		}
		if quickInline.Load() > 10 {
			break
		}
	}
	if got := quickInline.Load() > 0; got != inline {
		t.Fatalf("a quick function ran on the reader: %v, want %v", got, inline)
	}
	if n := slowInline.Load(); n > 0 {
		t.Fatalf("a function working 100 µs per call ran %d calls on the reader", n)
	}
}
