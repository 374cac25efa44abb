package metrics_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/metrics"
)

// A function whose id is OtherFunction's label itself ("_other": a peer
// chooses the ids it sends) is counted with OtherFunction, not under a
// label of its own beside it: two series with the same labels make every
// scrape of the registry fail.
func TestFunctionNamedLikeOtherSharesItsSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{MaxFunctions: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := arbor.NewServer(arbor.WithObserver(m.Observer())) // not watched: every id may get a label
	must(t, arbor.Handle1(srv, "echo", func(ctx context.Context, p []byte) ([]byte, error) { return p, nil }))
	l, err := srv.Listen(testContext(t), "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := arbor.Dial(testContext(t), l.URL(), arbor.WithObserver(m.Observer()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); srv.Close() })
	ctx := testContext(t)
	arbor.Call0[int](ctx, cl, metrics.OtherFunction)
	for i := range 4 { // the last two past MaxFunctions: counted as OtherFunction
		arbor.Call0[int](ctx, cl, fmt.Sprint("made-up-", i))
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("the registry cannot be gathered: %v", err)
	}
	byName := gather(t, reg)
	for _, side := range []string{"server", "client"} {
		if got := value(t, byName, "arbor_"+side+"_calls_total", map[string]string{"function": metrics.OtherFunction}); got != 3 {
			t.Errorf("%s: %v calls counted as %s, want 3 (%q and two past the bound)", side, got, metrics.OtherFunction, metrics.OtherFunction)
		}
	}
}
