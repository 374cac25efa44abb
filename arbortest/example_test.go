package arbortest_test

import (
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arbortest"
)

// In a test: one call gives a server and a client connected over mem:,
// both closed when the test ends.
func ExampleNew() {
	var t *testing.T // the test's own t
	p := arbortest.New(t)
	arbor.Handle2(p.Server, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	sum, err := arbor.Call2[int](context.Background(), p.Client, "add", 2, 3)
	if err != nil || sum != 5 {
		t.Fatalf("add = %d, %v", sum, err)
	}
	// More clients, with their own options:
	other := p.Dial(t, arbor.WithBearerToken("t0k"))
	_ = other
}
