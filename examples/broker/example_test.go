package broker_test

import (
	"context"
	"fmt"
	"log"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/examples/broker"
)

// A capability from one server (the bank) through a second (the broker)
// to a third party (the customer), and a struct holding two capabilities
// both ways.
func Example() {
	ctx := context.Background()
	// Server A: the bank.
	bank := &broker.Bank{}
	a := arbor.NewServer(arbor.WithBootstrap(bank.Service()))
	la, err := a.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()

	// Server B: the broker, a client of the bank.
	toBank, err := arbor.Dial(ctx, la.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer toBank.Close()
	bankRef, err := toBank.Bootstrap(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer bankRef.Close()
	b := arbor.NewServer(arbor.WithBootstrap((&broker.Broker{Bank: bankRef}).Service()))
	lb, err := b.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	// Client C: the customer, who only knows the broker.
	c, err := arbor.Dial(ctx, lb.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	brk, err := c.Bootstrap(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()
	alice, _ := arbor.Call1[*arbor.Ref](ctx, brk, "open", "alice") // lives on the bank
	bob, _ := arbor.Call1[*arbor.Ref](ctx, brk, "open", "bob")
	fmt.Println(arbor.Call1[int](ctx, alice, "deposit", 100))

	// The customer's own capability, called back during the transfer.
	notes := arbor.NewService("notes")
	arbor.Handle1(notes, "notify", func(ctx context.Context, msg string) (bool, error) {
		fmt.Println("customer notified:", msg)
		return true, nil
	})
	r, err := arbor.Call1[broker.Receipt](ctx, brk, "transfer", broker.Transfer{From: alice, To: bob, Amount: 30, Notify: notes.Ref()})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.FromBalance, r.ToBalance)
	fmt.Println(arbor.Call0[int](ctx, r.To, "balance")) // bob's account, from the receipt
	for _, ref := range []*arbor.Ref{alice, bob, r.From, r.To} {
		ref.Close()
	}
	// Output:
	// 100 <nil>
	// customer notified: transferred
	// 70 30
	// 30 <nil>
}
