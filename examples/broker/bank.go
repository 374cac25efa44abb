package broker

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor"
)

// Bank is server A: it opens accounts, each a capability with methods
//
//	balance() -> int
//	deposit(amount int) -> int   (the new balance; negative withdraws)
type Bank struct {
	// Released counts the accounts no client holds a reference to any
	// more (their services were released): it shows releases reach the
	// bank through the broker.
	Released atomic.Int64
}

// Service returns the bank's bootstrap service: open(owner string) ->
// Account.
func (b *Bank) Service() *arbor.Service {
	svc := arbor.NewService("Bank")
	must(arbor.Handle1(svc, "open", func(ctx context.Context, owner string) (*arbor.Service, error) {
		return b.account(owner), nil
	}))
	return svc
}

func (b *Bank) account(owner string) *arbor.Service {
	var mu sync.Mutex
	balance := 0
	acct := arbor.NewService("Account:" + owner)
	must(arbor.Handle0(acct, "balance", func(ctx context.Context) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return balance, nil
	}))
	must(arbor.Handle1(acct, "deposit", func(ctx context.Context, amount int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if balance+amount < 0 {
			return balance, arbor.Errorf(arbor.FailedPrecondition, "%s: insufficient funds (%d, withdrawing %d)", owner, balance, -amount)
		}
		balance += amount
		return balance, nil
	}))
	return acct.OnRelease(func() { b.Released.Add(1) })
}

func must(err error) {
	if err != nil {
		panic(err) // a bad registration: a bug in this package
	}
}
