package arbor_test

import (
	"context"
	"errors"
	"testing"

	"github.com/arbor-rpc/arbor"
)

// A result that does not decode as the caller's type is an error on the
// client, never a panic.
func TestResultTypeMismatchOnClient(t *testing.T) {
	_, c := authServer(t, nil)
	_, err := arbor.Call0[[]int](context.Background(), c, "whoami")
	if !errors.Is(err, arbor.ErrSerialization) || arbor.CodeOf(err) != arbor.Internal {
		t.Fatalf("got %v", err)
	}
}
