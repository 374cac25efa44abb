package resolve

import (
	"bytes"
	"context"
	"hash/maphash"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/request"
)

// keyMemo remembers the content keys of recently answered requests by
// their wire bytes, so that a hot request is answered from the memory
// cache without hashing its tree again. It is a fixed table of slots, one
// entry each, replaced on collision: bounded, lock-free, never wrong (an
// entry is used only when its bytes equal the request's).
type keyMemo struct {
	seed  maphash.Seed
	slots [memoSlots]atomic.Pointer[memoEntry]
}

const (
	memoSlots    = 1024
	memoMaxBytes = 2048 // requests larger than this are not remembered
)

type memoEntry struct {
	raw   []byte
	key   request.Key
	id    string
	nargs int
}

func (m *keyMemo) slot(raw []byte) *atomic.Pointer[memoEntry] {
	return &m.slots[maphash.Bytes(m.seed, raw)%memoSlots]
}

// MemoryHitMsgpack answers a request in msgpack form (request.AppendMsgpack,
// exactly one tree) from the memory cache alone, as MemoryHit does; it
// reports false when it cannot, and the caller resolves the tree as usual.
// raw is not retained.
func (e *Engine) MemoryHitMsgpack(ctx context.Context, raw []byte) ([]byte, bool) {
	s := e.memo.slot(raw)
	if m := s.Load(); m != nil && bytes.Equal(m.raw, raw) {
		return e.MemoryHit(ctx, m.id, m.nargs, m.key)
	}
	key, id, nargs, used, ok := request.MsgpackKey(raw, e.cfg.Limits)
	if !ok || used != len(raw) {
		return nil, false
	}
	res, ok := e.MemoryHit(ctx, string(id), nargs, key)
	if ok && len(raw) <= memoMaxBytes {
		s.Store(&memoEntry{raw: bytes.Clone(raw), key: key, id: string(id), nargs: nargs})
	}
	return res, ok
}
