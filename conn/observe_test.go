package conn

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// obsRecorder is an Observer that writes down what it sees.
type obsRecorder struct {
	mu     sync.Mutex
	events []string
	stalls int
	// addMD is added to outgoing calls' metadata by CallStarted.
	addMD *wire.MD
}

type obsKey struct{}

func (r *obsRecorder) add(format string, args ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *obsRecorder) ConnOpened(c *Conn)            { r.add("open client=%v", c.IsClient()) }
func (r *obsRecorder) ConnClosed(c *Conn, err error) { r.add("close client=%v", c.IsClient()) }
func (r *obsRecorder) CallStarted(ctx context.Context, info *CallInfo) context.Context {
	r.add("start out=%v %s %s args=%d", info.Outgoing, info.Kind, info.Function, info.ArgBytes)
	if info.Outgoing && r.addMD != nil {
		info.Metadata = append(info.Metadata[:len(info.Metadata):len(info.Metadata)], *r.addMD)
	}
	return context.WithValue(ctx, obsKey{}, info.Function)
}
func (r *obsRecorder) CallEnded(ctx context.Context, info *CallInfo, err error) {
	if ctx.Value(obsKey{}) != info.Function {
		r.add("end %s: not the context CallStarted returned", info.Function)
	}
	r.add("end out=%v %s %s args=%d result=%d code=%s", info.Outgoing, info.Kind, info.Function,
		info.ArgBytes, info.ResultBytes, status.CodeOf(err))
}
func (r *obsRecorder) FlowStalled(c *Conn, d time.Duration) {
	r.mu.Lock()
	r.stalls++
	r.mu.Unlock()
}
func (r *obsRecorder) GoAway(c *Conn, sent bool, code uint32, msg string) {
	r.add("goaway sent=%v client=%v %s", sent, c.IsClient(), msg)
}

func (r *obsRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// waitFor polls until the recorder has n events.
func (r *obsRecorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := len(r.events)
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			return r.take()
		}
		time.Sleep(time.Millisecond)
	}
}

func TestObserverSeesUnaryCallsBothWays(t *testing.T) {
	srv, cli := &obsRecorder{}, &obsRecorder{addMD: &wire.MD{Key: "traceparent", Value: "00-x"}}
	p := newPair(t, Config{Observer: srv}, Config{Observer: cli})
	if got := cli.take(); fmt.Sprint(got) != "[open client=true]" {
		t.Errorf("client opened: %q", got)
	}
	ctx := context.Background()
	given := []wire.MD{{Key: "a", Value: "1"}}
	r, err := p.client.Call(ctx, out("md", given, []byte("xy")))
	if err != nil {
		t.Fatal(err)
	}
	// The observer's metadata reached the handler; the caller's slice is untouched.
	if got := string(r.Result()); got != "a=1;traceparent=00-x;" {
		t.Errorf("handler saw metadata %q", got)
	}
	r.Release()
	if len(given) != 1 || cap(given) != 1 {
		t.Errorf("the caller's metadata was modified: %v", given)
	}
	if _, err := p.client.Call(ctx, out("nosuch", nil, []byte("abc"))); status.CodeOf(err) != status.NotFound {
		t.Fatalf("nosuch: %v", err)
	}
	want := []string{
		"start out=true unary md args=2",
		"end out=true unary md args=2 result=21 code=OK",
		"start out=true unary nosuch args=3",
		"end out=true unary nosuch args=3 result=0 code=NotFound",
	}
	if got := cli.take(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("client side:\n got %q\nwant %q", got, want)
	}
	got := srv.waitFor(t, 5)
	want = []string{
		"open client=false",
		"start out=false unary md args=2",
		"end out=false unary md args=2 result=21 code=OK",
		"start out=false unary nosuch args=3",
		"end out=false unary nosuch args=3 result=0 code=NotFound",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server side:\n got %q\nwant %q", got, want)
	}
}

func TestObserverSeesAsyncCalls(t *testing.T) {
	cli := &obsRecorder{}
	p := newPair(t, Config{}, Config{Observer: cli})
	cli.take()
	a, err := p.client.Go(context.Background(), &Outgoing{Function: "echo", Args: []byte("abcd"), Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	<-a.Done()
	a.Release()
	want := []string{"start out=true async echo args=4", "end out=true async echo args=4 result=4 code=OK"}
	if got := cli.waitFor(t, 2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestObserverSeesStreamsWithTheirBytes(t *testing.T) {
	srv, cli := &obsRecorder{}, &obsRecorder{}
	cc, _ := streamPair(t, Config{Observer: srv}, Config{Observer: cli}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		for {
			m, err := in.Stream.Recv()
			if err == io.EOF {
				return append(out, "done"...), nil
			}
			if err != nil {
				return nil, err
			}
			if err := in.Stream.Send(append(m, m...)); err != nil {
				return nil, err
			}
		}
	})
	srv.waitFor(t, 1)
	cli.take()
	s, err := cc.OpenStream(context.Background(), out("chat", nil, []byte("a")))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Send([]byte("12345")); err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(); err != nil || string(m) != "1234512345" {
			t.Fatalf("recv %q %v", m, err)
		}
	}
	s.CloseSend()
	if _, err := s.Result(); err != nil {
		t.Fatal(err)
	}
	// Client: 1 byte of arguments + 15 sent; 4 of result + 30 received.
	want := []string{"start out=true stream chat args=1", "end out=true stream chat args=16 result=34 code=OK"}
	if got := cli.waitFor(t, 2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("client:\n got %q\nwant %q", got, want)
	}
	want = []string{"start out=false stream chat args=1", "end out=false stream chat args=16 result=34 code=OK"}
	if got := srv.waitFor(t, 2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("server:\n got %q\nwant %q", got, want)
	}
}

func TestObserverSeesFlowStalls(t *testing.T) {
	const window = 16 << 10
	srv := &obsRecorder{}
	release := make(chan struct{})
	cc, _ := streamPair(t, Config{Observer: srv}, Config{StreamWindow: window, ConnWindow: window},
		func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
			msg := make([]byte, 4<<10)
			for i := 0; i < 32; i++ { // 8x the client's window
				if err := in.Stream.Send(msg); err != nil {
					return nil, err
				}
			}
			return out, nil
		})
	s, err := cc.OpenStream(context.Background(), out("flood", nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	<-release // the handler fills the window and waits meanwhile
	for {
		if _, err := s.Recv(); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	srv.mu.Lock()
	stalls := srv.stalls
	srv.mu.Unlock()
	if stalls == 0 {
		t.Error("the sender waited for credit, but no stall was observed")
	}
}

func TestObserverSeesGoAwayAndClose(t *testing.T) {
	srv, cli := &obsRecorder{}, &obsRecorder{}
	p := newPair(t, Config{Observer: srv}, Config{Observer: cli})
	srv.waitFor(t, 1)
	cli.take()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.server.Drain(ctx, "bye"); err != nil {
		t.Fatal(err)
	}
	got := srv.waitFor(t, 2)
	if fmt.Sprint(got) != "[goaway sent=true client=false bye close client=false]" {
		t.Errorf("server: %q", got)
	}
	got = cli.waitFor(t, 2)
	if len(got) != 2 || got[0] != "goaway sent=false client=true bye" || got[1] != "close client=true" {
		t.Errorf("client: %q", got)
	}
}

// Observers calls each observer, threading the context through.
func TestObserversCombine(t *testing.T) {
	if Observers(nil, nil) != nil {
		t.Error("Observers of nothing should be nil")
	}
	a, b := &obsRecorder{}, &obsRecorder{}
	if Observers(nil, a) != Observer(a) {
		t.Error("Observers of one should be that one")
	}
	p := newPair(t, Config{}, Config{Observer: Observers(a, b)})
	if _, err := callString(t, p.client, context.Background(), "echo", "x"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*obsRecorder{a, b} {
		got := strings.Join(r.take(), "|")
		if !strings.Contains(got, "start out=true unary echo") || !strings.Contains(got, "end out=true unary echo args=1 result=1 code=OK") {
			t.Errorf("combined observer saw %q", got)
		}
	}
}

// slotObserver binds two values to every incoming call with
// CallInfo.WithValue: the first in the call's own context (the same
// context comes back), the second, the slot taken, with context.WithValue.
type slotObserver struct {
	obsRecorder
	sameCtx chan bool
}

type slotKey struct{ n int }

func (o *slotObserver) CallStarted(ctx context.Context, info *CallInfo) context.Context {
	if info.Outgoing {
		return info.WithValue(ctx, slotKey{0}, "client") // not a served call's context: wrapped
	}
	got := info.WithValue(ctx, slotKey{1}, "first")
	o.sameCtx <- got == ctx
	return info.WithValue(got, slotKey{2}, "second")
}

func (o *slotObserver) CallEnded(ctx context.Context, info *CallInfo, err error) {
	key, want := slotKey{1}, "first"
	if info.Outgoing {
		key, want = slotKey{0}, "client"
	}
	if ctx.Value(key) != want {
		o.add("end: %v missing", key)
	}
}

func TestCallInfoWithValue(t *testing.T) {
	srv := &slotObserver{sameCtx: make(chan bool, 4)}
	cli := &slotObserver{sameCtx: make(chan bool, 4)}
	c, _ := streamPair(t, Config{Observer: srv}, Config{Observer: cli}, func(ctx context.Context, in *Incoming, out []byte) ([]byte, error) {
		for _, k := range []slotKey{{1}, {2}} {
			v, _ := ctx.Value(k).(string)
			out = append(out, v+";"...)
		}
		return out, nil
	})
	for range 2 { // the slot is the call's: the second call has its own
		if got, err := callString(t, c, context.Background(), "f", ""); err != nil || got != "first;second;" {
			t.Fatalf("handler saw %q, %v; want both values", got, err)
		}
		if !<-srv.sameCtx {
			t.Error("the first value did not go in the call's own context")
		}
	}
	for _, ev := range append(srv.take(), cli.take()...) {
		if strings.HasPrefix(ev, "end:") {
			t.Error(ev)
		}
	}
}

// keepObserver keeps a value of its own at CallStarted and checks at
// CallEnded that it got it back.
type keepObserver struct {
	obsRecorder
	name string
}

func (o *keepObserver) ConnOpened(*Conn)        {}
func (o *keepObserver) ConnClosed(*Conn, error) {}

func (o *keepObserver) CallStarted(ctx context.Context, info *CallInfo) context.Context {
	if v := info.Kept(); v != nil {
		o.add("%s: kept %v before Keep", o.name, v)
	}
	info.Keep(o.name + " " + info.Function)
	return ctx
}

func (o *keepObserver) CallEnded(ctx context.Context, info *CallInfo, err error) {
	o.add("%s got %v", o.name, info.Kept())
}

// Each observer combined, nested combinations included, keeps its own
// value from CallStarted to CallEnded; past maxKept, Keep keeps nothing.
func TestCallInfoKeep(t *testing.T) {
	var obs []*keepObserver
	for i := range maxKept + 1 {
		obs = append(obs, &keepObserver{name: fmt.Sprint("o", i)})
	}
	inner := Observers(obs[1], obs[2])
	all := Observers(obs[0], inner, obs[3], obs[4])
	p := newPair(t, Config{}, Config{Observer: all})
	for range 2 {
		if _, err := callString(t, p.client, context.Background(), "echo", "x"); err != nil {
			t.Fatal(err)
		}
	}
	for i, o := range obs {
		want := o.name + " got " + o.name + " echo"
		if i == maxKept {
			want = o.name + " got <nil>"
		}
		got := o.take()
		if len(got) != 2 || got[0] != want || got[1] != want {
			t.Errorf("observer %d saw %q, want twice %q", i, got, want)
		}
	}
}

// elapsedObserver reads Elapsed twice at CallEnded, a pause apart.
type elapsedObserver struct {
	obsRecorder
	mu         sync.Mutex
	first, now time.Duration
	sinceStart time.Duration
}

func (o *elapsedObserver) CallEnded(ctx context.Context, info *CallInfo, err error) {
	if !info.Outgoing {
		return
	}
	first := info.Elapsed()
	time.Sleep(20 * time.Millisecond)
	o.mu.Lock()
	o.first, o.now, o.sinceStart = first, info.Elapsed(), time.Since(info.Start)
	o.mu.Unlock()
}

// TestOutgoingCallEndsWhenItsAnswerArrived: an answered call's duration
// is fixed by the read that brought the answer, not by when the observer
// asks (which would cost a clock read per call).
func TestOutgoingCallEndsWhenItsAnswerArrived(t *testing.T) {
	for _, async := range []bool{false, true} {
		cli := &elapsedObserver{}
		p := newPair(t, Config{}, Config{Observer: cli})
		ctx := context.Background()
		if async {
			a, err := p.client.Go(ctx, &Outgoing{Function: "echo", Args: []byte("abcd"), Retain: true})
			if err != nil {
				t.Fatal(err)
			}
			<-a.Done()
			a.Release()
		} else {
			r, err := p.client.Call(ctx, out("echo", nil, []byte("abcd")))
			if err != nil {
				t.Fatal(err)
			}
			r.Release()
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			cli.mu.Lock()
			first, now, since := cli.first, cli.now, cli.sinceStart
			cli.mu.Unlock()
			if since > 0 {
				if first <= 0 || now != first || since < first+20*time.Millisecond {
					t.Errorf("async=%v: Elapsed %v, then %v after a pause (%v since Start): want it fixed at the answer's arrival", async, first, now, since)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("async=%v: CallEnded not seen", async)
			}
			time.Sleep(time.Millisecond)
		}
	}
}
