package faultnet

import (
	"errors"
	"io"
	"log"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// transport is a real memberlist transport on loopback, wrapped.
func transport(t *testing.T, n *Network, group int) (*Transport, string) {
	t.Helper()
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		Logger:    log.New(io.Discard, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nt.Shutdown() })
	addr := "127.0.0.1:" + strconv.Itoa(nt.GetAutoBindPort())
	n.Assign(addr, group)
	return n.Wrap(addr, nt), addr
}

func received(tr *Transport, d time.Duration) bool {
	select {
	case <-tr.PacketCh():
		return true
	case <-time.After(d):
		return false
	}
}

func TestPartitionAndHeal(t *testing.T) {
	n := New()
	a, addrA := transport(t, n, 0)
	b, addrB := transport(t, n, 1)
	c, addrC := transport(t, n, 0)

	if _, err := a.WriteTo([]byte("hello"), addrB); err != nil || !received(b, 2*time.Second) {
		t.Fatalf("before the cut, a packet did not arrive (%v)", err)
	}
	n.Partition()
	if _, err := a.WriteToAddress([]byte("x"), memberlist.Address{Addr: addrB, Name: "b"}); err != nil {
		t.Fatalf("a dropped packet must look sent: %v", err)
	}
	if received(b, 200*time.Millisecond) {
		t.Fatal("a packet crossed the cut")
	}
	if _, err := b.DialTimeout(addrA, time.Second); !errors.Is(err, ErrCut) {
		t.Fatalf("dial across the cut: %v, want ErrCut", err)
	}
	// Within a group, traffic flows.
	if _, err := a.WriteTo([]byte("same side"), addrC); err != nil || !received(c, 2*time.Second) {
		t.Fatal("a packet within a group did not arrive")
	}
	conn, err := c.DialAddressTimeout(memberlist.Address{Addr: addrA}, time.Second)
	if err != nil {
		t.Fatalf("dial within a group: %v", err)
	}
	conn.Close()
	select {
	case sc := <-a.StreamCh(): // the listener handed the stream over
		sc.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("the stream within a group was not accepted")
	}
	if n.Dropped() != 2 {
		t.Fatalf("dropped %d, want 2", n.Dropped())
	}
	n.Heal()
	if _, err := b.WriteTo([]byte("again"), addrA); err != nil || !received(a, 2*time.Second) {
		t.Fatal("after healing, a packet did not arrive")
	}
}
