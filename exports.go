package arbor

import (
	"context"
	"sync"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

// exportTable holds the services one connection exports: the peer holds
// references to them, counted, until it releases them or the connection
// closes (the table is attached to the connection and dies with it).
type exportTable struct {
	mu      sync.Mutex
	next    uint64
	exports map[uint64]*export
	ids     map[*Service]uint64
	seqs    map[seqKey]*sequencer
	// answerSeqs lists the sequencers of targets in each answer, dropped
	// with it (forgetAnswers).
	answerSeqs map[uint64][]seqKey
	proxies    map[*importRef]*Service // re-exported imports of other connections, by import
	zombies    map[uint64]struct{}     // released exports kept for pipelined calls (reap)
	limit      int
	closed     bool // the connection closed: export nothing more
}

type export struct {
	svc  *Service
	refs int64 // references the peer holds
}

// seqKey names a call target for ordering.
type seqKey struct {
	kind wire.TargetKind
	id   uint64
	path string
}

// defaultMaxExports bounds the services exported on one connection.
const defaultMaxExports = 10000

func capsOf(c *conn.Conn) *exportTable {
	t, _ := c.Attachment(func() any {
		return &exportTable{exports: make(map[uint64]*export), ids: make(map[*Service]uint64),
			seqs: make(map[seqKey]*sequencer), answerSeqs: make(map[uint64][]seqKey), proxies: make(map[*importRef]*Service), zombies: make(map[uint64]struct{}), limit: defaultMaxExports}
	}).(*exportTable)
	return t
}

// exportOn exports svc on c (once per connection) and counts one more
// reference held by the peer.
func exportOn(c *conn.Conn, svc *Service) (uint64, error) {
	if err := c.Err(); err != nil {
		return 0, fromStatus(err)
	}
	t := capsOf(c)
	if t == nil {
		return 0, Errorf(Unavailable, "connection closed")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.exportLocked(svc)
}

func (t *exportTable) exportLocked(svc *Service) (uint64, error) {
	if t.closed {
		return 0, Errorf(Unavailable, "connection closed")
	}
	if id, ok := t.ids[svc]; ok {
		t.exports[id].refs++
		return id, nil
	}
	if len(t.exports) >= t.limit {
		return 0, Errorf(ResourceExhausted, "too many exported services on this connection (limit %d): the peer must release some", t.limit)
	}
	t.next++
	t.exports[t.next] = &export{svc: svc, refs: 1}
	t.ids[svc] = t.next
	svc.exported.Add(1)
	return t.next, nil
}

// exportedService returns the service exported as id on c, or nil.
func exportedService(c *conn.Conn, id uint64) *Service {
	t := capsOf(c)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.exports[id]; e != nil {
		return e.svc
	}
	return nil
}

// exportsOn reports how many services are exported on c.
func exportsOn(c *conn.Conn) int {
	t := capsOf(c)
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.exports)
}

// releaseExport drops n of the peer's references to export id; a release
// of more than the peer holds is the peer's error and changes nothing
// beyond freeing the export. An export a pipelined call has yet to find
// (ExportPinned) is freed when that call has been delivered (reap).
func releaseExport(c *conn.Conn, id uint64, n uint32) {
	t := capsOf(c)
	if t == nil {
		return
	}
	t.mu.Lock()
	e := t.exports[id]
	if e == nil {
		t.mu.Unlock()
		return
	}
	e.refs -= int64(n)
	done := e.refs <= 0
	if done {
		e.refs = 0 // a release of more than was held counts as all
	}
	t.mu.Unlock()
	if done && c.ExportPinned(id) {
		t.mu.Lock()
		t.zombies[id] = struct{}{}
		t.mu.Unlock()
		return // kept for a pipelined call; Unpinned reaps it
	}
	if done {
		t.free(c, id)
	}
}

// free drops export id if the peer still holds no reference to it.
func (t *exportTable) free(c *conn.Conn, id uint64) {
	t.mu.Lock()
	e := t.exports[id]
	if e == nil || e.refs > 0 {
		delete(t.zombies, id) // revived by a new reference
		t.mu.Unlock()
		return
	}
	delete(t.exports, id)
	delete(t.ids, e.svc)
	delete(t.zombies, id)
	delete(t.seqs, seqKey{kind: wire.TargetExport, id: id})
	if f := e.svc.forward; f != nil && f.state.hold != nil {
		delete(t.proxies, f.state.hold.imp)
	}
	t.mu.Unlock()
	c.ForgetTarget(wire.TargetExport, id)
	if f := e.svc.forward; f != nil { // a proxy: the release goes on to the origin
		f.Close()
	}
	e.svc.unexported()
}

// reap frees the exports the peer released while pipelined calls still
// had to find them, once no call will.
func (t *exportTable) reap(c *conn.Conn) {
	t.mu.Lock()
	if len(t.zombies) == 0 {
		t.mu.Unlock()
		return
	}
	var dead []uint64
	for id := range t.zombies {
		dead = append(dead, id)
	}
	t.mu.Unlock()
	for _, id := range dead {
		if !c.ExportPinned(id) {
			t.free(c, id)
		}
	}
}

// forgetAnswers drops the sequencers of targets in the answers ids.
func (t *exportTable) forgetAnswers(ids []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		for _, k := range t.answerSeqs[id] {
			delete(t.seqs, k)
		}
		delete(t.answerSeqs, id)
	}
}

// ConnClosed releases what the connection's proxies hold on other
// connections: the peer's references to them died with the connection.
func (t *exportTable) ConnClosed() {
	t.mu.Lock()
	var fwd []*Ref
	var gone []*Service
	for _, e := range t.exports {
		if e.svc.forward != nil {
			fwd = append(fwd, e.svc.forward)
		}
		gone = append(gone, e.svc)
	}
	t.closed = true
	clear(t.exports)
	clear(t.ids)
	clear(t.proxies)
	clear(t.zombies)
	clear(t.seqs)
	clear(t.answerSeqs)
	t.mu.Unlock()
	for _, r := range fwd {
		r.Close()
	}
	for _, svc := range gone {
		svc.unexported()
	}
}

// exportProxy exports on c a proxy forwarding to r, a reference from
// another connection, counting one more reference held by the peer. An
// import passed on twice is one proxy, one export: the peer sees the same
// capability.
func exportProxy(c *conn.Conn, r *Ref) (uint64, error) {
	t := capsOf(c)
	if t == nil {
		return 0, Errorf(Unavailable, "connection closed")
	}
	var imp *importRef
	if r.state.hold != nil {
		imp = r.state.hold.imp
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if svc := t.proxies[imp]; imp != nil && svc != nil {
		return t.exportLocked(svc)
	}
	svc := proxyService(r.dup())
	id, err := t.exportLocked(svc)
	if err != nil {
		go svc.forward.Close() // not under t.mu: a release may call into this table
		return 0, err
	}
	if imp != nil {
		t.proxies[imp] = svc
	}
	return id, nil
}

// sequencer runs the calls on one target in arrival order. Every ticket
// is used exactly once (leave), even by calls that fail before running,
// so one bad call cannot stall the ones behind it.
type sequencer struct {
	mu   sync.Mutex
	cond *sync.Cond
	next uint64              // the ticket of the call to run next
	done map[uint64]struct{} // tickets that left out of turn
	// slow holds the tickets, not yet delivered, of calls whose delivery
	// waits (for an answer, a promise, a serialized service's turn); a
	// call without any of that is delivered at once unless one of them
	// is ahead of it (Arrive classifies calls in arrival order).
	slow map[uint64]struct{}
}

// markSlow records that ticket's delivery will wait.
func (q *sequencer) markSlow(ticket uint64) {
	q.mu.Lock()
	q.slow[ticket] = struct{}{}
	q.mu.Unlock()
}

// retireAtArrival retires ticket, a call delivered at once, when no call
// ahead of it waits to be delivered; it runs on the reading goroutine, in
// arrival order, so then nothing is ahead of it at all.
func (q *sequencer) retireAtArrival(ticket uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.slow) > 0 {
		return false
	}
	q.leaveLocked(ticket)
	return true
}

// enterFast reports whether ticket, a call delivered at once, may go
// now: no call ahead of it is still waiting to be delivered. It then has
// left.
func (q *sequencer) enterFast(ticket uint64) bool {
	q.mu.Lock()
	if _, slow := q.slow[ticket]; slow {
		q.mu.Unlock()
		return false
	}
	for t := range q.slow {
		if t < ticket {
			q.mu.Unlock()
			return false
		}
	}
	q.leaveLocked(ticket)
	q.mu.Unlock()
	return true
}

// enter waits for ticket's turn or for ctx to end.
func (q *sequencer) enter(ctx context.Context, ticket uint64) error {
	q.mu.Lock()
	if q.next == ticket { // its turn already: the common case, without a watch on ctx
		q.mu.Unlock()
		return nil
	}
	q.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { q.mu.Lock(); q.cond.Broadcast(); q.mu.Unlock() })
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.next != ticket && ctx.Err() == nil {
		q.cond.Wait()
	}
	return ctx.Err()
}

// leave retires ticket, in turn or not, and lets the next one go.
func (q *sequencer) leave(ticket uint64) {
	q.mu.Lock()
	q.leaveLocked(ticket)
	q.mu.Unlock()
}

func (q *sequencer) leaveLocked(ticket uint64) {
	delete(q.slow, ticket)
	if ticket == q.next {
		q.next++
		for {
			if _, ok := q.done[q.next]; !ok {
				break
			}
			delete(q.done, q.next)
			q.next++
		}
	} else if ticket > q.next {
		q.done[ticket] = struct{}{}
	}
	q.cond.Broadcast()
}

// sequencerFor returns the sequencer of an incoming call's target.
func sequencerFor(in *conn.Incoming) *sequencer {
	q, _ := lookupTarget(in)
	return q
}

// lookupTarget returns, under one lock, the sequencer of an incoming
// call's target and, when it is addressed to an export, that service (or
// nil). A nil sequencer means the connection closed.
func lookupTarget(in *conn.Incoming) (*sequencer, *Service) {
	key := seqKey{kind: in.Target.Kind, id: in.Target.ID, path: string(in.Target.Path)}
	t := capsOf(in.Conn)
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil
	}
	q := t.seqs[key]
	if q == nil {
		q = &sequencer{next: 1, done: make(map[uint64]struct{}), slow: make(map[uint64]struct{})}
		q.cond = sync.NewCond(&q.mu)
		t.seqs[key] = q
		if key.kind == wire.TargetAnswer {
			t.answerSeqs[key.id] = append(t.answerSeqs[key.id], key)
		}
	}
	var svc *Service
	if in.Target.Kind == wire.TargetExport {
		if e := t.exports[in.Target.ID]; e != nil {
			svc = e.svc
		}
	}
	return q, svc
}
