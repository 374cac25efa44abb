package conn

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// A call the peer's decoder would refuse as malformed (a function id
// over wire.MaxFunctionID, metadata over wire.MaxMetadata, an empty or
// non-UTF-8 id, a path or promise table over its limit) is refused here,
// before it is sent, with an error naming the limit: sent, it would be
// a protocol error that closes the connection and fails every other
// call on it.
func TestCallsOverWireLimitsRefusedBeforeSending(t *testing.T) {
	p := newPair(t, Config{}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inflight := make(chan error, 1)
	go func() {
		_, err := callString(t, p.client, ctx, "wait", "")
		inflight <- err
	}()
	<-p.h.started
	bigPath := make([]wire.PathSegment, wire.MaxPath+1)
	for _, tc := range []struct {
		name string
		o    *Outgoing
		want string
	}{
		{"long function id", out(strings.Repeat("f", wire.MaxFunctionID+1), nil, nil), "function id is 1025 bytes, over the limit of 1024"},
		{"empty function id", out("", nil, nil), "empty function id"},
		{"function id not UTF-8", out("f\xff", nil, nil), "not valid UTF-8"},
		{"large metadata", out("echo", []wire.MD{{Key: "k", Value: strings.Repeat("v", wire.MaxMetadata)}}, nil), "metadata is 65542 bytes, over the limit of 65536"},
		{"long metadata key", out("echo", []wire.MD{{Key: strings.Repeat("k", wire.MaxMetadata+1)}}, nil), "over the limit of 65536"},
		{"long target path", &Outgoing{Function: "m", Target: &wire.Target{Kind: wire.TargetAnswer, ID: 1, Path: wire.AppendPath(nil, bigPath)}}, "target: path of 65 segments exceeds limit 64"},
		{"long promise path", &Outgoing{Function: "m", Promises: []wire.PromiseRef{{ID: 1, Path: wire.AppendPath(nil, bigPath)}}}, "promise 0: path of 65 segments exceeds limit 64"},
		{"long path key", &Outgoing{Function: "m", Target: &wire.Target{Kind: wire.TargetAnswer, ID: 1, Path: wire.AppendPath(nil, []wire.PathSegment{{Key: strings.Repeat("k", wire.MaxFunctionID+1)}})}}, "target: path key length 1025 exceeds limit 1024"},
		{"many promises", &Outgoing{Function: "m", Promises: make([]wire.PromiseRef, wire.MaxPromises+1)}, "1025 promises, over the limit of 1024"},
	} {
		_, err := p.client.Call(ctx, tc.o)
		if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument containing %q", tc.name, err, tc.want)
		}
	}
	if got, err := callString(t, p.client, ctx, "echo", "still up"); err != nil || got != "still up" {
		t.Fatalf("a call after the refused ones: %q %v", got, err)
	}
	p.h.ended <- nil
	if err := <-inflight; err != nil {
		t.Fatalf("the call in flight failed: %v", err)
	}
}

// An error whose message is over the caller's frame limit (a handler
// quoting a large argument back) reaches the caller shortened, as an
// error: written whole, its frame is over the limit and the caller closes
// the connection as a protocol error, failing every call on it.
func TestLargeErrorFitsPeerFrameLimit(t *testing.T) {
	cc, _ := streamPair(t, Config{}, Config{MaxFrame: wire.MinMaxFrame}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		if string(in.Function) == "bad" {
			return nil, status.Errorf(status.InvalidArgument, "bad argument %q", strings.Repeat("x", 3*wire.MinMaxFrame))
		}
		return append(out, in.Args...), nil
	})
	_, err := cc.Call(context.Background(), out("bad", nil, nil))
	if status.CodeOf(err) != status.InvalidArgument || !strings.Contains(err.Error(), "bad argument") {
		t.Fatalf("got %v", err)
	}
	if r, err := cc.Call(context.Background(), out("echo", nil, []byte("ok"))); err != nil {
		t.Fatalf("after a large error: %v", err)
	} else {
		r.Release()
	}
}

// A result that fits the caller's frame limit only without its capability
// table is refused with ResourceExhausted, as any result over the limit:
// its frame, table included, would be over it and close the connection.
func TestResultCapsCountTowardsFrameLimit(t *testing.T) {
	cc, _ := streamPair(t, Config{}, Config{MaxFrame: wire.MinMaxFrame}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		if string(in.Function) == "caps" {
			for i := range 64 {
				in.ResultCaps = append(in.ResultCaps, wire.CapDescriptor{Kind: wire.CapSenderHosted, ID: 1<<62 + uint64(i)})
			}
			return append(out, make([]byte, wire.MinMaxFrame-64)...), nil
		}
		return append(out, in.Args...), nil
	})
	_, err := cc.Call(context.Background(), out("caps", nil, nil))
	if status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "frame limit") {
		t.Fatalf("got %v", err)
	}
	if r, err := cc.Call(context.Background(), out("echo", nil, []byte("ok"))); err != nil {
		t.Fatalf("after a large result: %v", err)
	} else {
		r.Release()
	}
}

// A call whose capability table holds long paths (promised capabilities
// passed back) is measured with them against the peer's frame limit:
// refused here with ResourceExhausted, not sent over the limit, which the
// peer takes for a protocol error.
func TestCallCapPathsCountTowardsFrameLimit(t *testing.T) {
	p := newPair(t, Config{MaxFrame: wire.MinMaxFrame}, Config{})
	var path []wire.PathSegment
	for range 3 {
		path = append(path, wire.PathSegment{Key: strings.Repeat("k", 1000)})
	}
	o := out("echo", nil, make([]byte, 2000))
	o.Caps = []wire.CapDescriptor{{Kind: wire.CapReceiverAnswer, ID: 2, Path: wire.AppendPath(nil, path)}}
	_, err := p.client.Call(context.Background(), o)
	if status.CodeOf(err) != status.ResourceExhausted || !strings.Contains(err.Error(), "frame limit") {
		t.Fatalf("got %v", err)
	}
	if got, err := callString(t, p.client, context.Background(), "echo", "ok"); err != nil || got != "ok" {
		t.Fatalf("after a call over the limit: %v", err)
	}
}

// A peer proposing a keep-alive interval of a millisecond does not make
// this side ping every millisecond (a write and a timer per connection
// per interval): it may shorten this side's interval to a second, no
// less. This side's own setting still rules below that.
func TestPeerCannotImposeTinyKeepAlive(t *testing.T) {
	_, sc := rawClientWith(t, Config{Handler: &testHandler{}, KeepAlive: 30 * time.Second},
		wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Millisecond})
	if sc.keepAlive != minPeerKeepAlive {
		t.Fatalf("keep-alive %v after the peer proposed 1ms, want %v", sc.keepAlive, minPeerKeepAlive)
	}
	_, own := rawClientWith(t, Config{Handler: &testHandler{}, KeepAlive: 50 * time.Millisecond},
		wire.Hello{Version: wire.Version, MaxFrame: 1 << 20, KeepAlive: time.Millisecond})
	if own.keepAlive != 50*time.Millisecond {
		t.Fatalf("keep-alive %v with this side's own 50ms, want 50ms", own.keepAlive)
	}
}
