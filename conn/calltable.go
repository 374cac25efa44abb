package conn

// callTable is the outgoing calls waiting for their answers, by id (the
// connection's cmu guards it). This side's ids rise by two per call, so
// the calls in flight at one time almost always fall in different slots
// of a ring indexed by id: a slot per call, and a map only for the few
// whose slot a call still waiting holds (one far older, or a burst wider
// than the ring). A map alone cost a hash insert and delete per call: 3.5%
// of a 64-byte echo's CPU.
type callTable struct {
	ring []callSlot // made at the first call: a connection that only serves has none
	over map[uint64]*call
}

type callSlot struct {
	id uint64
	cl *call // nil: free
}

// callRing is the number of ring slots (a power of two): 4 KiB.
const callRing = 256

func (t *callTable) slot(id uint64) *callSlot { return &t.ring[(id>>1)&(callRing-1)] }

func (t *callTable) put(id uint64, cl *call) {
	if t.ring == nil {
		t.ring = make([]callSlot, callRing)
	}
	if s := t.slot(id); s.cl == nil {
		*s = callSlot{id: id, cl: cl}
		return
	}
	if t.over == nil {
		t.over = make(map[uint64]*call)
	}
	t.over[id] = cl
}

// take removes call id and returns it, or nil when it is not waiting.
func (t *callTable) take(id uint64) *call {
	if t.ring != nil {
		if s := t.slot(id); s.cl != nil && s.id == id {
			cl := s.cl
			*s = callSlot{}
			return cl
		}
	}
	if cl, ok := t.over[id]; ok {
		delete(t.over, id)
		return cl
	}
	return nil
}

// has reports whether call id is waiting.
func (t *callTable) has(id uint64) bool {
	if t.ring != nil {
		if s := t.slot(id); s.cl != nil && s.id == id {
			return true
		}
	}
	_, ok := t.over[id]
	return ok
}

// takeAbove removes the calls with ids above last and returns them.
func (t *callTable) takeAbove(last uint64) []*call {
	var out []*call
	for i := range t.ring {
		if s := &t.ring[i]; s.cl != nil && s.id > last {
			out = append(out, s.cl)
			*s = callSlot{}
		}
	}
	for id, cl := range t.over {
		if id > last {
			out = append(out, cl)
			delete(t.over, id)
		}
	}
	return out
}

// takeAll empties the table and returns what it held.
func (t *callTable) takeAll() []*call {
	return t.takeAbove(0)
}
