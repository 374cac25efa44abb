package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestLinkProxy checks the proxy: a round trip takes at least twice the
// delay, bytes keep their order across many writes, and Close ends every
// goroutine it started.
func TestLinkProxy(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // echo
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	const d = 20 * time.Millisecond
	p, err := startLinkProxy(ln.Addr().String(), d)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))

	for range 2 {
		start := time.Now()
		c.Write([]byte("ping"))
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
			t.Fatalf("echo %q, %v", got, err)
		}
		if rt := time.Since(start); rt < 2*d {
			t.Fatalf("round trip %v through a proxy delaying %v each way", rt, d)
		}
	}

	var want []byte
	for i := range 3000 {
		want = append(want, bytes.Repeat([]byte{byte(i)}, 1+i%300)...)
	}
	go func() {
		for b := want; len(b) > 0; {
			n := min(len(b), 1+len(b)%700)
			if _, err := c.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes reordered or corrupted through the proxy")
	}

	p.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("client connection still open after the proxy closed")
	}
	c.Close()
	ln.Close()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPipeline checks every pipeline runner through a delayed link: one
// call gives 2 and a chain of 10 gives 10; no chain beats a round trip,
// grpc's costs one per call and Arbor's only a few.
func TestPipeline(t *testing.T) {
	const d = 10 * time.Millisecond
	for _, name := range pipelineOrder {
		s, ok := pipelineRegistry[name]
		if !ok {
			t.Logf("%s: not built in", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := s.start(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if v, err := r.One(ctx); err != nil || v != 2 {
				t.Fatalf("one call: %d, %v; want 2", v, err)
			}
			best := time.Hour
			for range 3 {
				start := time.Now()
				v, err := r.Chain(ctx, 10)
				took := time.Since(start)
				if err != nil || v != 10 {
					t.Fatalf("chain of 10: %d, %v; want 10", v, err)
				}
				if took < 2*d {
					t.Fatalf("chain of 10 took %v, less than one round trip (%v)", took, 2*d)
				}
				best = min(best, took)
			}
			t.Logf("fastest chain of 10: %v (round trip >= %v)", best, 2*d)
			switch name {
			case "grpc":
				if best < 10*2*d {
					t.Errorf("grpc chain of 10 took %v, under 10 round trips", best)
				}
			case "arbor":
				if best > 5*2*d {
					t.Errorf("arbor chain of 10 took %v, over 5 round trips: not pipelined", best)
				}
			}
			// Chains from several goroutines at once on the one connection.
			errs := make(chan error, 8)
			for range 8 {
				go func() {
					v, err := r.Chain(ctx, 10)
					if err == nil && v != 10 {
						err = io.ErrUnexpectedEOF
					}
					errs <- err
				}()
			}
			for range 8 {
				if err := <-errs; err != nil {
					t.Errorf("concurrent chain: %v", err)
				}
			}
		})
	}
}

// TestPipelineSection runs the section on a short link and checks its
// report.
func TestPipelineSection(t *testing.T) {
	var buf bytes.Buffer
	if err := runPipeline(&buf, pipelineConfig{linkDelay: time.Millisecond, chain: 10, runs: 3, warm: 1}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for name := range pipelineRegistry {
		if !strings.Contains(out, "| "+name+" | ") {
			t.Errorf("no row for %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "Bar (") {
		t.Errorf("no bar line:\n%s", out)
	}
}

// TestPipelineReport checks the table and the bar verdict on made-up
// results.
func TestPipelineReport(t *testing.T) {
	ms := func(v ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x*float64(time.Millisecond)))
		}
		return out
	}
	results := []pipelineResult{
		{system: "arbor", how: "promises", one: ms(10, 10.5, 12), chain: ms(11, 12, 13)},
		{system: "grpc", how: "sequential", one: ms(10, 11, 12, 20), chain: ms(100, 110, 120, 130)},
	}
	var buf bytes.Buffer
	pc := pipelineConfig{linkDelay: 5 * time.Millisecond, chain: 10, runs: 3, warm: 1}
	printPipelineResults(&buf, results, pc)
	printPipelineBar(&buf, results, 10, pipelineBar)
	out := buf.String()
	for _, want := range []string{
		"| arbor | promises | 10.50ms | 12.00ms | 1.14x | 10.00ms..12.00ms | 11.00ms..13.00ms |",
		"| grpc | sequential | 11.50ms | 115.00ms | 10.00x | 10.00ms..20.00ms | 100.00ms..130.00ms |",
		"Bar (Arbor's chain of 10 < 1.5x its one call, medians): met, 1.14x (grpc 10.00x).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	buf.Reset()
	results[0].chain = ms(15, 16, 17)
	printPipelineBar(&buf, results, 10, pipelineBar)
	if !strings.Contains(buf.String(), ": NOT met, 1.52x (grpc 10.00x).") {
		t.Errorf("report:\n%s", buf.String())
	}
	buf.Reset()
	printPipelineBar(&buf, results[1:], 10, pipelineBar)
	if !strings.Contains(buf.String(), "not assessed") {
		t.Errorf("report without arbor:\n%s", buf.String())
	}
}
