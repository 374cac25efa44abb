package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEcho checks every registered runner echoes exactly, alone and under
// concurrency on its one connection, and closes cleanly.
func TestEcho(t *testing.T) {
	for _, name := range knownSystems() {
		t.Run(name, func(t *testing.T) { testEcho(t, name, registry[name].start) })
	}
}

// TestTransportEcho does the same for every system × transport of the
// transports section (tls:// and quic:// with the throwaway certificates).
func TestTransportEcho(t *testing.T) {
	for _, name := range knownTransports() {
		t.Run(name, func(t *testing.T) { testEcho(t, name, transportRegistry[name].start) })
	}
}

func testEcho(t *testing.T, name string, start func(context.Context) (Runner, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := start(ctx)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	sizes := []int{0, 1, 64, 1024, 64<<10 + 3, 1 << 20}
	for _, n := range sizes {
		p := makePayload(n)
		got, err := r.Call(ctx, p)
		if mp, ok := r.(maxPayloader); ok {
			if limit, _ := mp.MaxPayload(); n > limit {
				// Refused with the limit named, and the runner still works.
				if err == nil || !strings.Contains(err.Error(), strconv.Itoa(limit)) {
					t.Fatalf("%d bytes over a limit of %d: got %v, want an error naming the limit", n, limit, err)
				}
				continue
			}
		}
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if err := checkEcho(name, p, got); err != nil {
			t.Fatal(err)
		}
		if n > 0 && &got[0] == &p[0] {
			t.Fatalf("%d bytes: result aliases the payload", n)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				p := makePayload((g*131 + i*17) % 3000)
				got, err := r.Call(ctx, p)
				if err == nil {
					err = checkEcho(name, p, got)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

// TestFloorAllocs holds floor to its promise: one allocation per call (the
// returned payload copy), client and server together.
func TestFloorAllocs(t *testing.T) {
	r, err := startFloor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := makePayload(64)
	ctx := context.Background()
	for range 100 { // grow buffers and the waiter pool
		if _, err := r.Call(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(500, func() {
		if _, err := r.Call(ctx, p); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Fatalf("floor: %.2f allocs per call, want 1", allocs)
	}
}

func TestFloorCancel(t *testing.T) {
	r, err := startFloor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Call(ctx, makePayload(8)); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	// Waiters abandoned or not, later calls still get their own answers.
	for n := range 200 {
		p := makePayload(n)
		got, err := r.Call(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("call %d: wrong echo", n)
		}
	}
	r.Close()
	if _, err := r.Call(context.Background(), makePayload(8)); err == nil {
		t.Fatal("call after Close succeeded")
	}
}

type badRunner struct{}

func (badRunner) Call(_ context.Context, p []byte) ([]byte, error) {
	out := append([]byte(nil), p...)
	out[len(out)-1] ^= 1
	return out, nil
}
func (badRunner) Close() error { return nil }

func TestMeasure(t *testing.T) {
	r, err := startFloor(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res, err := measure("floor", r, makePayload(64), 4, 10*time.Millisecond, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.calls == 0 || res.callsPerSec <= 0 || res.p50 <= 0 || res.p99 < res.p50 {
		t.Fatalf("implausible result: %+v", res)
	}
	if res.allocsPerCall > 3 {
		t.Fatalf("floor: %.2f allocs/call in the harness", res.allocsPerCall)
	}
	if _, err := measure("bad", badRunner{}, makePayload(64), 2, 5*time.Millisecond, 5*time.Millisecond); err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("mismatch not reported: %v", err)
	}

	var buf bytes.Buffer
	res2 := res
	res2.system = "arbor"
	printResults(&buf, []result{res, res2})
	printRatios(&buf, []result{res, res2}, "arbor", []int{64}, []int{4})
	for _, want := range []string{"| floor | 64 B | 4 |", "arbor/floor calls/s", "1.00x"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestParse(t *testing.T) {
	got, err := parseSizes("64, 1KiB,4k,2MiB,10b")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[64 1024 4096 2097152 10]" {
		t.Fatalf("parseSizes: %v", got)
	}
	if _, err := parseSizes("x"); err == nil {
		t.Fatal("bad size accepted")
	}
	if _, err := parseInts("1,0"); err == nil {
		t.Fatal("concurrency 0 accepted")
	}
	if _, err := lookupSystems("floor,nope"); err == nil {
		t.Fatal("unknown system accepted")
	}
}
