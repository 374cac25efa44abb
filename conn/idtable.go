package conn

// idTable holds the calls of one direction by id: the outgoing calls
// waiting for their answers (cmu) and the incoming calls being served
// (smu). Ids rise by two per call, so the calls in flight at one time
// almost always fall in different slots of a ring indexed by id: a slot
// per call, and a map only for the few whose slot a call still in flight
// holds (one far older, or a burst wider than the ring; a peer choosing
// ids that collide gets the map, no worse). A map alone cost a hash
// insert and delete per call each way: 3.5% of a 64-byte echo's CPU.
type idTable[T any] struct {
	ring []idSlot[T] // made at the ringAfter'th put: a connection with few calls has none
	over map[uint64]*T
	n    int
	puts int
}

type idSlot[T any] struct {
	id uint64
	v  *T // nil: free
}

const (
	// idRing is the number of ring slots (a power of two): 4 KiB.
	idRing = 256
	// ringAfter is the number of calls after which a connection gets a
	// ring: one that only opens and idles (thousands may) keeps a map of
	// a few entries instead of 4 KiB.
	ringAfter = 64
)

func (t *idTable[T]) slot(id uint64) *idSlot[T] { return &t.ring[(id>>1)&(idRing-1)] }

// put adds v as id, which is not in the table.
func (t *idTable[T]) put(id uint64, v *T) {
	t.n++
	if t.ring == nil && t.puts < ringAfter {
		if t.puts++; t.puts == ringAfter {
			t.ring = make([]idSlot[T], idRing)
		}
	}
	if t.ring != nil {
		if s := t.slot(id); s.v == nil {
			*s = idSlot[T]{id: id, v: v}
			return
		}
	}
	if t.over == nil {
		t.over = make(map[uint64]*T)
	}
	t.over[id] = v
}

// get returns id's entry, or nil.
func (t *idTable[T]) get(id uint64) *T {
	if t.ring != nil {
		if s := t.slot(id); s.v != nil && s.id == id {
			return s.v
		}
	}
	return t.over[id]
}

// take removes id's entry and returns it, or nil when there is none.
func (t *idTable[T]) take(id uint64) *T {
	if t.ring != nil {
		if s := t.slot(id); s.v != nil && s.id == id {
			v := s.v
			*s = idSlot[T]{}
			t.n--
			return v
		}
	}
	if v, ok := t.over[id]; ok {
		delete(t.over, id)
		t.n--
		return v
	}
	return nil
}

// len is the number of entries.
func (t *idTable[T]) len() int { return t.n }

// each calls fn for every entry.
func (t *idTable[T]) each(fn func(*T)) {
	for i := range t.ring {
		if v := t.ring[i].v; v != nil {
			fn(v)
		}
	}
	for _, v := range t.over {
		fn(v)
	}
}

// takeAbove removes the entries with ids above last and returns them.
func (t *idTable[T]) takeAbove(last uint64) []*T {
	var out []*T
	for i := range t.ring {
		if s := &t.ring[i]; s.v != nil && s.id > last {
			out = append(out, s.v)
			*s = idSlot[T]{}
		}
	}
	for id, v := range t.over {
		if id > last {
			out = append(out, v)
			delete(t.over, id)
		}
	}
	t.n -= len(out)
	return out
}

// takeAll empties the table and returns what it held (ids start at 1).
func (t *idTable[T]) takeAll() []*T { return t.takeAbove(0) }
