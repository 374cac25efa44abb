package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/examples/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type parties struct {
	bank     *broker.Bank
	customer *arbor.Client
	broker   *arbor.Ref
}

func start(t *testing.T) *parties {
	t.Helper()
	ctx := context.Background()
	bank := &broker.Bank{}
	a := arbor.NewServer(arbor.WithBootstrap(bank.Service()))
	la, err := a.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	toBank, err := arbor.Dial(ctx, la.URL())
	if err != nil {
		t.Fatal(err)
	}
	bankRef, err := toBank.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := arbor.NewServer(arbor.WithBootstrap((&broker.Broker{Bank: bankRef}).Service()))
	lb, err := b.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := arbor.Dial(ctx, lb.URL())
	if err != nil {
		t.Fatal(err)
	}
	brk, err := c.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		brk.Close()
		c.Close()
		b.Close()
		bankRef.Close()
		toBank.Close()
		a.Close()
	})
	return &parties{bank: bank, customer: c, broker: brk}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Releases made by the customer reach the bank through the broker, and so
// do those of a customer whose connection closes.
func TestReleasesReachTheBank(t *testing.T) {
	p := start(t)
	ctx := context.Background()
	alice, err := arbor.Call1[*arbor.Ref](ctx, p.broker, "open", "alice")
	if err != nil {
		t.Fatal(err)
	}
	bob, err := arbor.Call1[*arbor.Ref](ctx, p.broker, "open", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := arbor.Call1[int](ctx, alice, "deposit", 10); err != nil {
		t.Fatal(err)
	}
	r, err := arbor.Call1[broker.Receipt](ctx, p.broker, "transfer", broker.Transfer{From: alice, To: bob, Amount: 4})
	if err != nil || r.FromBalance != 6 || r.ToBalance != 4 {
		t.Fatalf("transfer: %+v %v", r, err)
	}
	// An error from the bank comes back through the broker as it was.
	_, err = arbor.Call1[broker.Receipt](ctx, p.broker, "transfer", broker.Transfer{From: bob, To: alice, Amount: 100})
	if !errors.Is(err, arbor.ErrFailedPrecondition) {
		t.Fatalf("overdraft: %v", err)
	}
	if n := p.bank.Released.Load(); n != 0 {
		t.Fatalf("%d accounts released while held", n)
	}
	for _, ref := range []*arbor.Ref{alice, bob, r.From, r.To} {
		ref.Close()
	}
	waitFor(t, func() bool { return p.bank.Released.Load() == 2 }, "the bank to see both accounts released")

	// A customer that goes away without closing anything.
	if _, err := arbor.Call1[*arbor.Ref](ctx, p.broker, "open", "carol"); err != nil {
		t.Fatal(err)
	}
	p.customer.Close()
	waitFor(t, func() bool { return p.bank.Released.Load() == 3 }, "the bank to see the closed customer's account released")
}
