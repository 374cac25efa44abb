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
	limit   int
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
			seqs: make(map[seqKey]*sequencer), limit: defaultMaxExports}
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
// beyond freeing the export.
func releaseExport(c *conn.Conn, id uint64, n uint32) {
	t := capsOf(c)
	if t == nil {
		return
	}
	t.mu.Lock()
	e := t.exports[id]
	freed := false
	if e != nil {
		if e.refs -= int64(n); e.refs <= 0 {
			delete(t.exports, id)
			delete(t.ids, e.svc)
			delete(t.seqs, seqKey{kind: wire.TargetExport, id: id})
			freed = true
		}
	}
	t.mu.Unlock()
	if freed {
		c.ForgetTarget(wire.TargetExport, id)
	}
}

// sequencer runs the calls on one target in arrival order. Every ticket
// is used exactly once (leave), even by calls that fail before running,
// so one bad call cannot stall the ones behind it.
type sequencer struct {
	mu   sync.Mutex
	cond *sync.Cond
	next uint64              // the ticket of the call to run next
	done map[uint64]struct{} // tickets that left out of turn
}

// enter waits for ticket's turn or for ctx to end.
func (q *sequencer) enter(ctx context.Context, ticket uint64) error {
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
	q.mu.Unlock()
}

// sequencerFor returns the sequencer of an incoming call's target.
func sequencerFor(in *conn.Incoming) *sequencer {
	key := seqKey{kind: in.Target.Kind, id: in.Target.ID, path: string(in.Target.Path)}
	t := capsOf(in.Conn)
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.seqs[key]
	if q == nil {
		q = &sequencer{next: 1, done: make(map[uint64]struct{})}
		q.cond = sync.NewCond(&q.mu)
		t.seqs[key] = q
	}
	return q
}
