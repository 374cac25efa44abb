package conn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
)

// inlineHandler keeps an InlineStat per function, as the root package's
// handlers do. "echo" answers at once; "gate" answers at once until
// blocked is set, then waits for its context; "big" answers 2 KiB.
type inlineHandler struct {
	mu      sync.Mutex
	stats   map[string]*InlineStat
	blocked chan struct{} // closed: "gate" blocks
	inGate  chan struct{} // a blocked "gate" call began
	sawInl  chan bool     // per "echo" call: did it run on the reader?
}

var bigAnswer = bytes.Repeat([]byte{'b'}, 2<<10)

func newInlineHandler() *inlineHandler {
	return &inlineHandler{stats: map[string]*InlineStat{}, blocked: make(chan struct{}), inGate: make(chan struct{}, 8), sawInl: make(chan bool, 1024)}
}

func (h *inlineHandler) InlineStat(in *Incoming) *InlineStat {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.stats[string(in.Function)]
	if s == nil {
		s = new(InlineStat)
		h.stats[string(in.Function)] = s
	}
	return s
}

func (h *inlineHandler) stat(fn string) *InlineStat {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats[fn]
}

func (h *inlineHandler) ServeCall(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
	switch string(in.Function) {
	case "echo":
		select {
		case h.sawInl <- in.Conn.rstate.Load()&1 == 1:
		default:
		}
		return append(out, in.Args...), nil
	case "gate":
		select {
		case <-h.blocked:
			h.inGate <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		default:
			return append(out, "open"...), nil
		}
	case "closeme": // closes its own connection once blocked is closed
		select {
		case <-h.blocked:
			in.Conn.Close()
			h.inGate <- struct{}{}
			return nil, status.Errorf(status.Unavailable, "closed")
		default:
			return append(out, "open"...), nil
		}
	case "big":
		return append(out, bigAnswer...), nil
	}
	return nil, status.Errorf(status.NotFound, "no function %q", in.Function)
}

func inlinePair(t *testing.T, scfg Config) (*Conn, *Conn, *inlineHandler) {
	t.Helper()
	h := newInlineHandler()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := connectPair(t, l, func() (net.Conn, error) { return net.Dial("tcp", l.Addr().String()) }, scfg, Config{}, h)
	return cc, sc, h
}

// earnInline calls fn one call at a time until it runs inline.
func earnInline(t *testing.T, cc *Conn, h *inlineHandler, fn string) {
	t.Helper()
	for i := 0; h.stat(fn) == nil || !h.stat(fn).Inline(); i++ {
		if i == 20*firstStreak {
			t.Fatalf("%s is not inline after %d calls", fn, i)
		}
		if _, err := callString(t, cc, context.Background(), fn, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// A function whose calls are quick runs on the reader once it has earned
// it, and not before.
func TestQuickFunctionRunsInline(t *testing.T) {
	cc, _, h := inlinePair(t, Config{})
	ctx := context.Background()
	const calls = firstStreak + 200
	for i := range calls {
		if got, err := callString(t, cc, ctx, "echo", "x"); err != nil || got != "x" {
			t.Fatalf("call %d: %q, %v", i, got, err)
		}
	}
	// The first streak runs on workers; a call the machine slowed down
	// (over quickCall) does not count, so the switch may come later, but
	// once on, every call runs inline.
	first := -1
	for i := range calls {
		on := <-h.sawInl
		switch {
		case on && i < firstStreak:
			t.Fatalf("call %d ran inline before a streak of %d quick calls", i, firstStreak)
		case on && first < 0:
			first = i
		case !on && first >= 0:
			t.Fatalf("call %d ran on a worker after call %d ran inline", i, first)
		}
	}
	if first < 0 || !h.stat("echo").Inline() {
		t.Fatalf("echo never ran inline in %d quick calls", calls)
	}
	t.Logf("inline from call %d on", first)
}

// An inline call that blocks does not stall the connection: the watchdog
// hands the reading to a new goroutine, so other calls are served and the
// blocked call's own CANCEL reaches it.
func TestInlineCallThatBlocksHandsOffReading(t *testing.T) {
	cc, _, h := inlinePair(t, Config{})
	ctx := context.Background()
	earnInline(t, cc, h, "gate")
	close(h.blocked)
	for round := range 2 {
		gctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := callString(t, cc, gctx, "gate", "")
			done <- err
		}()
		<-h.inGate // blocked in the handler, on the reader
		// Another call on the same connection is answered meanwhile.
		ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
		got, err := callString(t, cc, ectx, "echo", "still reading")
		ecancel()
		if err != nil || got != "still reading" {
			t.Fatalf("round %d: a call behind a blocked inline call: %q, %v", round, got, err)
		}
		cancel() // the CANCEL frame must be read to reach the handler
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) && status.CodeOf(err) != status.Canceled {
				t.Fatalf("round %d: blocked call ended with %v, want Canceled", round, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the blocked call's cancellation never reached it", round)
		}
	}
	// Two stalls that the watchdog ended make the function lose inline
	// runs: its calls go to workers, where blocking harms no one. (The
	// client's cancel returns at once; the handler records its duration
	// when the CANCEL has reached it.)
	for deadline := time.Now().Add(5 * time.Second); h.stat("gate").Inline(); {
		if time.Now().After(deadline) {
			s := h.stat("gate")
			t.Fatalf("gate still runs inline after stalling the reader twice (debt %d)", s.debt.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// A handler running inline that closes its own connection waits in
// Close for the connection's reader, which is itself: the watchdog hands
// the reading on so that Close returns.
func TestInlineHandlerClosesItsConnection(t *testing.T) {
	cc, sc, h := inlinePair(t, Config{})
	earnInline(t, cc, h, "closeme")
	close(h.blocked)
	go callString(t, cc, context.Background(), "closeme", "")
	select {
	case <-h.inGate:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called by an inline handler on its own connection never returned")
	}
	<-sc.Done()
}

// The answers inline calls queue hold memory budget: a reader that waits
// for budget writes them first instead of waiting for itself.
func TestInlineAnswersDoNotStarveTheBudget(t *testing.T) {
	// Three queued answers (under inlineFlushAt) and a request are more
	// than the budget.
	cc, _, h := inlinePair(t, Config{MaxFrame: 4 << 10, MaxMemory: 8 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	earnInline(t, cc, h, "big")
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := callString(t, cc, ctx, "big", fmt.Sprint(i)+strings.Repeat(".", 3<<10))
			if err == nil && len(got) != len(bigAnswer) {
				err = fmt.Errorf("answer of %d bytes", len(got))
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// One slow call does not end inline runs (a GC pause or a preempted
// thread is not the handler's doing); slow calls that keep coming do, and
// each loss doubles the streak needed to earn them back.
func TestInlineStatRecord(t *testing.T) {
	var s InlineStat
	for range firstStreak - 1 {
		s.record(time.Microsecond)
	}
	s.record(time.Second) // a slow call resets the streak
	for range firstStreak - 1 {
		s.record(time.Microsecond)
	}
	if s.Inline() {
		t.Fatal("inline before a full streak")
	}
	s.record(time.Microsecond)
	if !s.Inline() {
		t.Fatal("not inline after a full streak")
	}
	s.record(slowCall + 1)
	s.record(100 * time.Microsecond) // neither quick nor slow
	if !s.Inline() {
		t.Fatal("one slow call ended inline runs")
	}
	for i := 0; s.Inline(); i++ {
		if i > maxDebt/slowDebt+1 {
			t.Fatal("slow calls in a row never end inline runs")
		}
		s.record(slowCall + 1)
	}
	for range 2 * firstStreak {
		s.record(time.Microsecond)
	}
	if !s.Inline() {
		t.Fatal("not inline again after twice the first streak")
	}
	for range 8 {
		s.record(inlineStall)
	}
	for range 4*firstStreak - 1 {
		s.record(time.Microsecond)
	}
	if s.Inline() {
		t.Fatal("the streak needed did not double on the second loss")
	}
	s.record(time.Microsecond)
	if !s.Inline() {
		t.Fatal("not inline after four times the first streak")
	}
}

// endObserver counts the calls a server starts and ends.
type endObserver struct {
	obsRecorder
	slow    atomic.Int64 // each CallEnded takes this many nanoseconds
	mu      sync.Mutex
	started map[string]int
	ended   map[string]int
}

func (o *endObserver) CallStarted(ctx context.Context, info *CallInfo) context.Context {
	o.mu.Lock()
	o.started[strings.Clone(info.Function)]++ // it points into a reused buffer
	o.mu.Unlock()
	return ctx
}

func (o *endObserver) CallEnded(ctx context.Context, info *CallInfo, err error) {
	time.Sleep(time.Duration(o.slow.Load()))
	o.mu.Lock()
	o.ended[strings.Clone(info.Function)]++
	o.mu.Unlock()
}

func (o *endObserver) counts(fn string) (started, ended int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started[fn], o.ended[fn]
}

// waitBalanced waits until every call of fn that started has ended.
func (o *endObserver) waitBalanced(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, e := o.counts(fn)
		if s == e {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d calls started, %d ended", fn, s, e)
		}
		time.Sleep(time.Millisecond)
	}
}

// observedInline is an inline pair whose server an endObserver watches,
// with fns earned inline runs.
func observedInline(t *testing.T, fns ...string) (*Conn, *inlineHandler, *endObserver) {
	t.Helper()
	obs := &endObserver{started: map[string]int{}, ended: map[string]int{}}
	cc, _, h := inlinePair(t, Config{Observer: obs})
	for _, fn := range fns {
		earnInline(t, cc, h, fn)
	}
	return cc, h, obs
}

// goCalls starts n calls of fn, queued together.
func goCalls(t *testing.T, cc *Conn, ctx context.Context, fn string, n int) []*Async {
	t.Helper()
	as := make([]*Async, 0, n)
	for range n {
		a, err := cc.Go(ctx, &Outgoing{Function: fn, Args: []byte("a")})
		if err != nil {
			t.Fatal(err)
		}
		as = append(as, a)
	}
	return as
}

// awaitAll waits for every call of as and releases it.
func awaitAll(as []*Async) {
	for _, a := range as {
		<-a.Done()
		a.Release()
	}
}

// Observed inline calls end before their answers reach the caller.
func TestObservedInlineCallsEndBeforeTheirAnswers(t *testing.T) {
	cc, _, obs := observedInline(t, "echo")
	for i := range 300 {
		if _, err := callString(t, cc, context.Background(), "echo", "x"); err != nil {
			t.Fatal(err)
		}
		if s, e := obs.counts("echo"); e != s {
			t.Fatalf("call %d answered while the server had ended %d of %d calls", i, e, s)
		}
	}
}

// A burst whose answers pass inlineFlushAt is written before it ends:
// its calls still end before their answers leave.
func TestObservedInlineCallsEndBeforeALargeBurstIsWritten(t *testing.T) {
	cc, _, obs := observedInline(t, "big")
	obs.slow.Store(int64(200 * time.Microsecond)) // so that a write before the ends is seen
	_, before := obs.counts("big")
	for round := range 5 {
		const burst = 3 * inlineFlushAt / (2 << 10) // answers of 2 KiB
		as := goCalls(t, cc, context.Background(), "big", burst)
		for i, a := range as {
			<-a.Done()
			if _, e := obs.counts("big"); e-before < i+1 {
				t.Fatalf("round %d: %d answers arrived, the server had ended %d calls", round, i+1, e-before)
			}
			a.Release()
		}
		before += burst
	}
}

// Every observed inline call ends once: when the reading is handed to a
// new goroutine mid-burst, and when the connection closes.
func TestObservedInlineCallsEndOnHandOffAndClose(t *testing.T) {
	cc, h, obs := observedInline(t, "gate", "echo")
	ctx := context.Background()
	close(h.blocked)
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := callString(t, cc, gctx, "gate", "")
		done <- err
	}()
	<-h.inGate // blocked on the reader: the watchdog hands the reading on
	for range 50 {
		if _, err := callString(t, cc, ctx, "echo", "z"); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	<-done
	obs.waitBalanced(t, "gate")
	obs.waitBalanced(t, "echo")
	// Calls in flight as the connection closes end too.
	as := goCalls(t, cc, ctx, "echo", 32)
	cc.Close()
	awaitAll(as)
	obs.waitBalanced(t, "echo")
}

// When an inline call holds the reader, the calls that ran before it in
// its burst are answered as soon as a new goroutine takes over the
// reading, not when the stuck call returns or the next frame arrives.
func TestInlineCallsBeforeAStuckOneAreAnswered(t *testing.T) {
	cc, h, obs := observedInline(t, "gate", "echo")
	ctx := context.Background()
	close(h.blocked)
	gctx, cancel := context.WithCancel(ctx)
	// Queued together: one read brings the echoes and the gate behind them.
	as := goCalls(t, cc, ctx, "echo", 4)
	g := goCalls(t, cc, gctx, "gate", 1)
	defer func() {
		cancel()
		awaitAll(g)
	}()
	start := time.Now()
	<-h.inGate
	awaitAll(as)
	if d := time.Since(start); d > time.Second {
		t.Errorf("the echoes before the stuck call were answered after %v", d)
	}
	obs.waitBalanced(t, "echo")
}
