package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// numbered returns n bytes (n >= 8 gets a sequence number in front) that
// differ from message to message, so a lost, repeated or reordered echo
// shows.
func numbered(seq, n int) []byte {
	p := makePayload(n)
	if n >= 8 {
		binary.BigEndian.PutUint64(p, uint64(seq))
	}
	return p
}

// TestStreamEcho checks every stream runner: one lane echoes odd sizes in
// order, a long run of messages goes through flow control, 16 lanes on the
// one connection each get their own echoes back, the measuring harness
// runs, and Close returns.
func TestStreamEcho(t *testing.T) {
	for _, name := range knownStreamSystems() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := streamRegistry[name].start(ctx)
			if err != nil {
				t.Fatalf("start: %v", err)
			}

			var msgs [][]byte
			for i, n := range []int{0, 1, 64, 1024, 64<<10 + 3, 1 << 20, 7} {
				msgs = append(msgs, numbered(i, n))
			}
			if err := streamRoundTrip(ctx, name, r, msgs); err != nil {
				t.Fatalf("sizes: %v", err)
			}

			// 3000 × 1 KiB is more than either system's stream window.
			msgs = msgs[:0]
			for i := range 3000 {
				msgs = append(msgs, numbered(i, 1024))
			}
			if err := streamRoundTrip(ctx, name, r, msgs); err != nil {
				t.Fatalf("flow control: %v", err)
			}

			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var msgs [][]byte
					for i := range 200 {
						msgs = append(msgs, numbered(g<<20|i, 8+(g*131+i*17)%3000))
					}
					if err := streamRoundTrip(ctx, name, r, msgs); err != nil {
						errs <- fmt.Errorf("lane %d: %w", g, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}

			res, err := measureStream(name, r, makePayload(64), 4, 10*time.Millisecond, 50*time.Millisecond)
			if err != nil {
				t.Fatalf("measureStream: %v", err)
			}
			if res.msgs == 0 || res.msgsPerSec <= 0 || res.allocsPerMsg <= 0 {
				t.Fatalf("implausible result: %+v", res)
			}

			done := make(chan error, 1)
			go func() { done <- r.Close() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Close did not return")
			}
		})
	}
}

// fakeStream is an in-process StreamRunner whose lanes echo through a
// channel, optionally corrupting or dropping messages.
type fakeStream struct {
	corrupt bool // flip a bit in every 50th echo
	drop    bool // lose every 50th message
}

func (f fakeStream) Open(ctx context.Context) (Lane, error) {
	return &fakeLane{f: f, ctx: ctx, ch: make(chan []byte, 64)}, nil
}

func (fakeStream) Close() error { return nil }

type fakeLane struct {
	f   fakeStream
	ctx context.Context
	ch  chan []byte
	n   int
}

func (l *fakeLane) Send(p []byte) error {
	l.n++
	if l.f.drop && l.n%50 == 0 {
		return nil
	}
	m := bytes.Clone(p)
	if l.f.corrupt && l.n%50 == 0 && len(m) > 0 {
		m[len(m)-1] ^= 1
	}
	select {
	case l.ch <- m:
		return nil
	case <-l.ctx.Done():
		return l.ctx.Err()
	}
}

func (l *fakeLane) Recv() ([]byte, error) {
	select {
	case m, ok := <-l.ch:
		if !ok {
			return nil, io.EOF
		}
		return m, nil
	case <-l.ctx.Done():
		return nil, l.ctx.Err()
	}
}

func (l *fakeLane) CloseSend() error { close(l.ch); return nil }

func TestMeasureStream(t *testing.T) {
	res, err := measureStream("fake", fakeStream{}, makePayload(64), 3, 10*time.Millisecond, 30*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.msgs == 0 || res.msgsPerSec <= 0 || res.lanes != 3 || res.payload != 64 {
		t.Fatalf("implausible result: %+v", res)
	}
	if _, err := measureStream("fake", fakeStream{corrupt: true}, makePayload(64), 2, 5*time.Millisecond, 5*time.Millisecond); err == nil || !strings.Contains(err.Error(), "mismatch") {
		t.Fatalf("corrupt echo not reported: %v", err)
	}
	if _, err := measureStream("fake", fakeStream{drop: true}, makePayload(64), 2, 5*time.Millisecond, 5*time.Millisecond); err == nil || !strings.Contains(err.Error(), "echoed before io.EOF") {
		t.Fatalf("lost echoes not reported: %v", err)
	}
	if err := streamRoundTrip(context.Background(), "fake", fakeStream{corrupt: true}, [][]byte{make([]byte, 50*8)}); err != nil {
		t.Fatalf("one clean message: %v", err)
	}

	var buf bytes.Buffer
	res2 := res
	res2.system, res2.msgsPerSec = "grpc", res.msgsPerSec/2
	printStreamResults(&buf, []streamResult{res, res2})
	res.system = "arbor"
	printStreamRatios(&buf, []streamResult{res, res2}, "arbor", []int{64}, []int{3}, 1.5)
	for _, want := range []string{"| fake | 64 B | 3 |", "arbor/grpc msgs/s", "| 64 B | 3 | 2.00x |", "): met; reached in 1 of 1 cells"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestParseSections(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "error",
		"all":                      "[unary stream transports tree pipeline proto]",
		"bridge,unary":             "[unary proto]",
		"transports, unary":        "[unary transports]",
		"stream":                   "[stream]",
		"streaming,transport":      "[stream transports]",
		"unary,nope":               "error",
		"unary,stream,transports,": "[unary stream transports]",
		"tree,unary":               "[unary tree]",
		"trees":                    "[tree]",
		"promises,unary":           "[unary pipeline]",
		"check,tool,obs":           "[obs tool check]",
	} {
		got, err := parseModes(in)
		s := fmt.Sprint(got)
		if err != nil {
			s = "error"
		}
		if s != want {
			t.Errorf("parseModes(%q) = %s, want %s", in, s, want)
		}
	}
	ts, err := lookupTransports("tls,grpc-tcp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range ts {
		names = append(names, x.name())
	}
	want := "[grpc-tcp grpc-tls]"
	if _, ok := transportRegistry["arbor-tls"]; ok {
		want = "[arbor-tls grpc-tcp grpc-tls]"
	}
	if fmt.Sprint(names) != want {
		t.Errorf("lookupTransports(tls,grpc-tcp) = %v, want %s", names, want)
	}
	if _, err := lookupTransports("nope"); err == nil {
		t.Error("unknown transport accepted")
	}
	if _, err := lookupStreamSystems("grpc,nope"); err == nil {
		t.Error("unknown stream system accepted")
	}
}
