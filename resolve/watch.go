package resolve

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind says what changed in an asynchronous tree.
type EventKind uint8

const (
	// EventSubmitted: a tree was accepted; Status is its whole status
	// tree as it starts.
	EventSubmitted EventKind = iota + 1
	// EventNode: one request of the tree changed state (or ran again);
	// Status is that request alone, without its subrequests.
	EventNode
	// EventDone: the tree finished; Err is its error, "" on success.
	EventDone
	// EventDropped: the tree was released, or dropped after
	// Config.KeepFinished.
	EventDropped
)

var eventKindNames = [...]string{"", "submitted", "node", "done", "dropped"}

// String names the kind: submitted, node, done or dropped.
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && k > 0 {
		return eventKindNames[k]
	}
	return "unknown"
}

// Event is one change of an asynchronous tree, as a Subscription
// delivers it.
type Event struct {
	Kind   EventKind `json:"kind"`
	Tree   string    `json:"tree"` // the tree's id (Submit's)
	Status *Status   `json:"status,omitempty"`
	Err    string    `json:"err,omitempty"`
	Time   time.Time `json:"time"`
	// Missed counts the events this subscriber lost just before this one
	// because it read too slowly; after a loss, resynchronize from
	// Engine.Status.
	Missed uint64 `json:"missed,omitempty"`
}

// SubscribeOptions select what a Subscription receives.
type SubscribeOptions struct {
	// Tree, when set, limits the subscription to that tree's events.
	Tree string
	// Buffer is how many events are held for a reader that falls behind
	// (default 256); beyond it new events are dropped and counted in the
	// next delivered event's Missed. Publishing never waits for a reader.
	Buffer int
}

// ErrSubscriptionClosed is returned by Subscription.Next after Close, or
// once the engine has closed and every held event has been read.
var ErrSubscriptionClosed = errors.New("resolve: subscription closed")

// Subscription receives the status changes of asynchronous trees
// (Engine.Subscribe). Read it with Next; Close it when done.
type Subscription struct {
	e    *Engine
	tree string

	mu     sync.Mutex
	queue  []Event
	head   int
	size   int
	missed uint64
	closed bool
	notify chan struct{} // capacity 1: something was queued or it closed
}

// Subscribe starts delivering the status changes of asynchronous trees:
// every tree's, or opts.Tree's. Events are the transitions of each
// request of a tree (EventNode), and the trees' submission, end and
// removal. The subscriber sees only what happens after Subscribe: take
// Trees and Status for what is already there.
func (e *Engine) Subscribe(opts SubscribeOptions) *Subscription {
	size := opts.Buffer
	if size <= 0 {
		size = 256
	}
	s := &Subscription{e: e, tree: opts.Tree, size: size, notify: make(chan struct{}, 1)}
	if e.isClosed.Load() {
		s.closed = true
		return s
	}
	e.subs.add(s)
	return s
}

// Next returns the next event, waiting for one until ctx ends. It returns
// ErrSubscriptionClosed after Close, or when the engine has closed and the
// held events are read.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		s.mu.Lock()
		if s.head < len(s.queue) {
			ev := s.queue[s.head]
			s.queue[s.head] = Event{}
			s.head++
			if s.head == len(s.queue) {
				s.queue, s.head = s.queue[:0], 0
			}
			ev.Missed, s.missed = s.missed, 0
			s.mu.Unlock()
			return ev, nil
		}
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Event{}, ErrSubscriptionClosed
		}
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// Close ends the subscription; Next returns ErrSubscriptionClosed.
func (s *Subscription) Close() {
	s.e.subs.remove(s)
	s.shut()
}

func (s *Subscription) shut() {
	s.mu.Lock()
	s.closed = true
	s.queue, s.head = nil, 0
	s.mu.Unlock()
	s.wake()
}

func (s *Subscription) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// push queues ev, or counts it as missed when the queue is full.
func (s *Subscription) push(ev Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue)-s.head >= s.size {
		s.missed++
		s.mu.Unlock()
		return
	}
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	s.wake()
}

// subscribers is an engine's list of subscriptions, copied on write so
// that publishing takes no lock when there are none.
type subscribers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*Subscription]
}

func (l *subscribers) add(s *Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next []*Subscription
	if old := l.list.Load(); old != nil {
		next = append(next, *old...)
	}
	next = append(next, s)
	l.list.Store(&next)
}

func (l *subscribers) remove(s *Subscription) {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.list.Load()
	if old == nil {
		return
	}
	next := make([]*Subscription, 0, len(*old))
	for _, x := range *old {
		if x != s {
			next = append(next, x)
		}
	}
	l.list.Store(&next)
}

// closeAll ends every subscription (the engine closed).
func (l *subscribers) closeAll() {
	l.mu.Lock()
	old := l.list.Swap(nil)
	l.mu.Unlock()
	if old != nil {
		for _, s := range *old {
			s.mu.Lock()
			s.closed = true // held events stay readable
			s.mu.Unlock()
			s.wake()
		}
	}
}

// any reports whether anyone listens.
func (l *subscribers) any() bool {
	p := l.list.Load()
	return p != nil && len(*p) > 0
}

// publish delivers ev to the subscriptions that want it.
func (l *subscribers) publish(ev Event) {
	p := l.list.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		if s.tree == "" || s.tree == ev.Tree {
			s.push(ev)
		}
	}
}

// treePub is what a tree's status nodes need to publish their changes.
type treePub struct {
	e  *Engine
	id string
	mu sync.Mutex // orders one tree's events: the last one published is the latest state
	// report, when set, receives every change instead of the subscribers
	// (a subtree resolved for another node: ResolveHere).
	report func(*Status)
}

// changed publishes the current state of t, if anyone listens.
func (t *track) changed() {
	p := t.pub
	if p == nil {
		return
	}
	if p.report != nil {
		p.mu.Lock()
		p.report(t.self())
		p.mu.Unlock()
		return
	}
	if !p.e.subs.any() {
		return
	}
	p.mu.Lock()
	p.e.subs.publish(Event{Kind: EventNode, Tree: p.id, Status: t.self(), Time: time.Now()})
	p.mu.Unlock()
}

// self is a snapshot of t without its subrequests.
func (t *track) self() *Status {
	s := &Status{Path: t.path, UUID: t.id, Title: t.title, State: State(t.state.Load()),
		Cached: t.cached.Load(), Attempts: int(t.attempts.Load())}
	t.fillPlace(s)
	return s
}

// setPub gives t and its subrequests their tree's publisher.
func (t *track) setPub(p *treePub) {
	if t == nil {
		return
	}
	t.pub = p
	for _, c := range t.children {
		c.setPub(p)
	}
}

// publishTree publishes a tree-level event, if anyone listens.
func (e *Engine) publishTree(kind EventKind, id string, t *tree, errMsg string) {
	if !e.subs.any() {
		return
	}
	ev := Event{Kind: kind, Tree: id, Err: errMsg, Time: time.Now()}
	if kind == EventSubmitted && t != nil {
		ev.Status = t.root.snapshot()
	}
	if t != nil && t.root.pub != nil {
		t.root.pub.mu.Lock()
		defer t.root.pub.mu.Unlock()
	}
	e.subs.publish(ev)
}

// TreeInfo describes one asynchronous tree the engine holds.
type TreeInfo struct {
	ID        string    `json:"id"`
	UUID      string    `json:"uuid"` // the root request's function
	Title     string    `json:"title"`
	State     State     `json:"state"` // the root request's
	Submitted time.Time `json:"submitted"`
	Finished  time.Time `json:"finished"` // zero while it runs
	Err       string    `json:"err,omitempty"`
}

// Trees lists the asynchronous trees the engine holds, running or
// finished, newest first.
func (e *Engine) Trees() []TreeInfo {
	e.mu.Lock()
	out := make([]TreeInfo, 0, len(e.trees))
	for id, t := range e.trees {
		ti := TreeInfo{ID: id, UUID: t.root.id, Title: t.root.title, State: State(t.root.state.Load()),
			Submitted: t.submitted, Finished: t.finished}
		if !t.finished.IsZero() && t.err != nil {
			ti.Err = t.err.Error()
		}
		out = append(out, ti)
	}
	e.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Submitted.Equal(out[j].Submitted) {
			return out[i].Submitted.After(out[j].Submitted)
		}
		return out[i].ID < out[j].ID
	})
	return out
}
