package broker

import (
	"context"

	"github.com/arbor-rpc/arbor"
)

// Transfer moves Amount from one account to another; both are
// capabilities, and so is Notify, the customer's own (optional) object
// with notify(message string) -> bool.
type Transfer struct {
	From   *arbor.Ref `msgpack:"from"`
	To     *arbor.Ref `msgpack:"to"`
	Amount int        `msgpack:"amount"`
	Notify *arbor.Ref `msgpack:"notify,omitempty"`
}

// Receipt is the result of a transfer: the two accounts again, and their
// balances after it.
type Receipt struct {
	From        *arbor.Ref `msgpack:"from"`
	To          *arbor.Ref `msgpack:"to"`
	FromBalance int        `msgpack:"fromBalance"`
	ToBalance   int        `msgpack:"toBalance"`
}

// Broker is server B. Its bootstrap service (Service) has
//
//	open(owner string) -> Account          (an account at the bank)
//	transfer(t Transfer) -> Receipt
type Broker struct {
	Bank *arbor.Ref // the bank's bootstrap service, from a client of server A
}

// Service returns the broker's bootstrap service.
func (b *Broker) Service() *arbor.Service {
	svc := arbor.NewService("Broker")
	must(arbor.Handle1(svc, "open", func(ctx context.Context, owner string) (*arbor.Ref, error) {
		// The bank's capability, passed on: the broker's caller gets a
		// reference that the broker proxies. Returned, the reference is
		// handed over (the reply holds its own).
		return arbor.Call1[*arbor.Ref](ctx, b.Bank, "open", owner)
	}))
	must(arbor.Handle1(svc, "transfer", b.transfer))
	return svc
}

func (b *Broker) transfer(ctx context.Context, t Transfer) (Receipt, error) {
	if t.Notify != nil {
		defer t.Notify.Close()
	}
	if t.From == nil || t.To == nil {
		return Receipt{}, arbor.NewError(arbor.InvalidArgument, "transfer: from and to are both needed")
	}
	from, err := arbor.Call1[int](ctx, t.From, "deposit", -t.Amount)
	if err != nil {
		return Receipt{}, err
	}
	to, err := arbor.Call1[int](ctx, t.To, "deposit", t.Amount)
	if err != nil {
		return Receipt{}, err
	}
	if t.Notify != nil { // a call back into the customer
		if _, err := arbor.Call1[bool](ctx, t.Notify, "notify", "transferred"); err != nil {
			return Receipt{}, err
		}
	}
	// The two capabilities go back inside the result (handed over).
	return Receipt{From: t.From, To: t.To, FromBalance: from, ToBalance: to}, nil
}
