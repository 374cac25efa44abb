package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The streaming section: bidirectional echo streams, N lanes (one stream
// each) on ONE client connection. On every lane a sender goroutine sends
// the same payload as fast as the stream's flow control allows while a
// receiver goroutine reads the server's echoes; the measure is echoed
// messages received per second, all lanes together.

// StreamRunner is one RPC system's bidirectional streaming echo: a server
// on loopback TCP and ONE client connection, on which Open starts streams.
type StreamRunner interface {
	// Open starts one echo stream on the runner's connection. Cancelling
	// ctx aborts the stream: blocked Send and Recv calls return.
	Open(ctx context.Context) (Lane, error)
	// Close closes the client connection and stops the server.
	Close() error
}

// Lane is one bidirectional echo stream. Send and CloseSend are called
// from one goroutine and Recv from another, concurrently.
type Lane interface {
	// Send sends one message, blocking while flow control says wait. p is
	// not modified until the lane is done, and may be sent again.
	Send(p []byte) error
	// Recv returns the next echoed message (not aliasing what was sent),
	// or io.EOF once the server has ended the stream cleanly.
	Recv() ([]byte, error)
	// CloseSend half-closes the client's side; the server's echo loop sees
	// the end and returns, which ends the stream.
	CloseSend() error
}

type streamSystem struct {
	name  string
	note  string
	start func(ctx context.Context) (StreamRunner, error)
}

var streamRegistry = map[string]streamSystem{}

func registerStream(s streamSystem) {
	if _, dup := streamRegistry[s.name]; dup {
		panic("bench: duplicate stream system " + s.name)
	}
	streamRegistry[s.name] = s
}

func knownStreamSystems() []string {
	var out []string
	for _, n := range defaultOrder {
		if _, ok := streamRegistry[n]; ok {
			out = append(out, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(streamRegistry)) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// lookupStreamSystems resolves a comma-separated list ("all" or "" =
// every registered stream system).
func lookupStreamSystems(list string) ([]streamSystem, error) {
	list = strings.TrimSpace(list)
	if list == "" || list == "all" {
		var out []streamSystem
		for _, n := range knownStreamSystems() {
			out = append(out, streamRegistry[n])
		}
		return out, nil
	}
	var out []streamSystem
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		s, ok := streamRegistry[n]
		if !ok {
			hint := ""
			if n == "arbor" {
				hint = " (built with -tags noarbor?)"
			}
			return nil, fmt.Errorf("unknown stream system %q%s; known: %s", n, hint, strings.Join(knownStreamSystems(), ","))
		}
		out = append(out, s)
	}
	return out, nil
}

// streamRoundTrip opens one lane, sends msgs (from another goroutine, so
// flow control cannot deadlock it), checks that every echo comes back in
// order and then io.EOF after CloseSend.
func streamRoundTrip(ctx context.Context, name string, r StreamRunner, msgs [][]byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := r.Open(ctx)
	if err != nil {
		return fmt.Errorf("%s: open: %w", name, err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := l.Send(m); err != nil {
				sendErr <- fmt.Errorf("%s: send: %w", name, err)
				return
			}
		}
		sendErr <- l.CloseSend()
	}()
	for i, want := range msgs {
		got, err := l.Recv()
		if err != nil {
			cancel()
			return fmt.Errorf("%s: message %d of %d: recv: %w", name, i, len(msgs), err)
		}
		if err := checkEcho(name, want, got); err != nil {
			cancel()
			return fmt.Errorf("message %d of %d: %w", i, len(msgs), err)
		}
		if len(want) > 0 && &got[0] == &want[0] {
			cancel()
			return fmt.Errorf("%s: message %d: echo aliases what was sent", name, i)
		}
	}
	if _, err := l.Recv(); err != io.EOF {
		cancel()
		return fmt.Errorf("%s: after %d echoes and CloseSend: want io.EOF, got %v", name, len(msgs), err)
	}
	return <-sendErr
}

// streamResult is one measured streaming cell.
type streamResult struct {
	system  string
	payload int // bytes
	lanes   int

	msgs    uint64 // echoes received in the measured window
	elapsed time.Duration

	msgsPerSec   float64
	allocsPerMsg float64 // runtime.MemStats.Mallocs delta / msgs (client + server)
	bytesPerMsg  float64 // runtime.MemStats.TotalAlloc delta / msgs
}

// laneCount is a per-lane counter on its own cache line.
type laneCount struct {
	n atomic.Uint64
	_ [56]byte
}

// measureStream opens lanes streams on r, runs them for warm and then
// measures echoes received for dur, then stops the senders, drains every
// lane to io.EOF and checks that each got back exactly what it sent. A
// failed send or receive, or a wrong echo, aborts the cell with an error.
func measureStream(name string, r StreamRunner, payload []byte, lanes int, warm, dur time.Duration) (streamResult, error) {
	if lanes < 1 {
		return streamResult{}, fmt.Errorf("lanes %d < 1", lanes)
	}
	watchdog := time.AfterFunc(warm+dur+time.Minute, func() {
		panic(fmt.Sprintf("bench: %s stream %dB %d lanes made no progress for over a minute", name, len(payload), lanes))
	})
	defer watchdog.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		firstErr error
		errOnce  sync.Once
	)
	// fail records the first failure and aborts every lane; the failures
	// that aborting causes on other lanes are not recorded.
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}

	ls := make([]Lane, lanes)
	for i := range ls {
		l, err := r.Open(ctx)
		if err != nil {
			return streamResult{}, fmt.Errorf("%s: opening lane %d: %w", name, i, err)
		}
		ls[i] = l
	}

	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		start = make(chan struct{})
		recvd = make([]laneCount, lanes)
		sent  = make([]uint64, lanes)
	)
	for i, l := range ls {
		wg.Add(2)
		go func() { // sender
			defer wg.Done()
			<-start
			var n uint64
			defer func() { sent[i] = n }()
			for !stop.Load() {
				if err := l.Send(payload); err != nil {
					if err != io.EOF { // io.EOF: the stream ended; Recv says why
						fail(fmt.Errorf("%s: lane %d: send: %w", name, i, err))
					}
					return
				}
				n++
			}
			if err := l.CloseSend(); err != nil {
				fail(fmt.Errorf("%s: lane %d: CloseSend: %w", name, i, err))
			}
		}()
		go func() { // receiver
			defer wg.Done()
			c := &recvd[i].n
			for {
				m, err := l.Recv()
				if err == io.EOF {
					return
				}
				if err != nil {
					fail(fmt.Errorf("%s: lane %d: recv: %w", name, i, err))
					return
				}
				if err := checkEcho(name, payload, m); err != nil {
					fail(fmt.Errorf("lane %d: %w", i, err))
					return
				}
				c.Add(1)
			}
		}()
	}
	total := func() uint64 {
		var t uint64
		for i := range recvd {
			t += recvd[i].n.Load()
		}
		return t
	}
	sleep := func(d time.Duration) bool { // false if a lane failed
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}

	res := streamResult{system: name, payload: len(payload), lanes: lanes}
	close(start)
	if sleep(warm) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c0, t0 := total(), time.Now()
		ok := sleep(dur)
		res.elapsed = time.Since(t0)
		res.msgs = total() - c0
		runtime.ReadMemStats(&after)
		if ok && res.msgs > 0 {
			res.msgsPerSec = float64(res.msgs) / res.elapsed.Seconds()
			res.allocsPerMsg = float64(after.Mallocs-before.Mallocs) / float64(res.msgs)
			res.bytesPerMsg = float64(after.TotalAlloc-before.TotalAlloc) / float64(res.msgs)
		}
	}
	stop.Store(true)
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	for i := range ls {
		if got := recvd[i].n.Load(); got != sent[i] {
			return res, fmt.Errorf("%s: lane %d: sent %d messages, %d echoed before io.EOF", name, i, sent[i], got)
		}
	}
	if res.msgs == 0 {
		return res, fmt.Errorf("%s: no echo received in %v", name, dur)
	}
	return res, nil
}
