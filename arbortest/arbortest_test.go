package arbortest_test

import (
	"context"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arbortest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A pair serves calls; two pairs in one test do not see each other; the
// cleanup closes everything (goleak checks).
func TestPair(t *testing.T) {
	ctx := context.Background()
	a := arbortest.New(t)
	b := arbortest.New(t, arbor.WithInterceptors(func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			return nil, arbor.NewError(arbor.PermissionDenied, "b refuses")
		}
	}))
	mustRegister(t, arbor.Handle0(a.Server, "who", func(ctx context.Context) (string, error) { return "a", nil }))
	mustRegister(t, arbor.Handle0(b.Server, "who", func(ctx context.Context) (string, error) { return "b", nil }))
	if got, err := arbor.Call0[string](ctx, a.Client, "who"); err != nil || got != "a" {
		t.Fatalf("a: %q %v", got, err)
	}
	if _, err := arbor.Call0[string](ctx, b.Client, "who"); arbor.CodeOf(err) != arbor.PermissionDenied {
		t.Fatalf("b: %v", err)
	}
	c := a.Dial(t)
	if got, err := arbor.Call0[string](ctx, c, "who"); err != nil || got != "a" {
		t.Fatalf("second client: %q %v", got, err)
	}
}

func mustRegister(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
