package status_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/status"
)

// FromError takes the outermost error of either type, as the root package
// does: an arbor.Error wrapping a lower layer's (a dial error over its
// handshake's, a member's failure over its cause) keeps its own code and
// message.
func TestFromErrorOutermost(t *testing.T) {
	inner := status.Wrap(status.Unavailable, status.ErrTLS, nil, "handshake: reading HELLO: remote error: tls: certificate required")
	outer := &arbor.Error{Code: arbor.Unauthenticated, Message: "dial tls://10.0.0.1:7450: " + inner.Message, Cause: inner}
	for _, err := range []error{outer, fmt.Errorf("member a: %w", outer)} {
		se := status.FromError(err)
		if se.Code != status.Unauthenticated || se.Message != outer.Message {
			t.Errorf("FromError(%v) = %v; want the outer Unauthenticated error", err, se)
		}
		if got, want := status.CodeOf(err), status.Code(arbor.CodeOf(err)); got != want {
			t.Errorf("status.CodeOf = %v, arbor.CodeOf = %v", got, want)
		}
		if !errors.Is(se, inner) {
			t.Errorf("FromError(%v) lost its cause", err)
		}
	}
	// The other way round, the lower layer's error is the outer one.
	se := status.Wrap(status.NotFound, nil, arbor.Errorf(arbor.Internal, "x"), "request (f)")
	if got := status.FromError(fmt.Errorf("w: %w", se)); got != se {
		t.Errorf("FromError of a wrapped *status.Error = %v, want it as is", got)
	}
}

// ParseCode reads back every String, an unnamed code's "Code(N)" too.
func TestParseCodeInvertsString(t *testing.T) {
	for _, c := range []status.Code{status.OK, status.NotFound, status.Unauthenticated, 17, 1 << 20} {
		if got, ok := status.ParseCode(c.String()); !ok || got != c {
			t.Errorf("ParseCode(%q) = %v, %v; want %v", c.String(), got, ok, c)
		}
	}
	for _, s := range []string{"", "Code(", "Code(x)", "Code(-1)", "notfound"} {
		if _, ok := status.ParseCode(s); ok {
			t.Errorf("ParseCode(%q) accepted", s)
		}
	}
}
