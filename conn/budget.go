package conn

import (
	"math"
	"sync"
	"sync/atomic"
)

// Budget bounds the memory that the peers of a group of connections (a
// server's) can make it hold at once: the copy of each incoming call's
// request until its handler returns, and each result until it is written
// to the socket. A connection draws on its own budget (Config.MaxMemory)
// and on the shared one (Config.Budget); when either is spent it stops
// reading until bytes come back, so a client that sends without reading
// its answers is held back by TCP flow control instead of growing the
// server. Safe for concurrent use.
type Budget struct {
	limit   int64
	used    atomic.Int64
	waiters atomic.Int64
	mu      sync.Mutex
	sig     chan struct{} // made by a waiter, closed when bytes come back
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Used is the number of bytes held now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Limit is the budget's size.
func (b *Budget) Limit() int64 { return b.limit }

// tryTake takes n bytes if they fit, or always with force. A request
// larger than the whole budget still runs when nothing else holds any.
func (b *Budget) tryTake(n int64, force bool) bool {
	for {
		u := b.used.Load()
		if !force && u != 0 && u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// tryTakeHalf takes n bytes if half of the budget is left after them.
func (b *Budget) tryTakeHalf(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit/2 {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// acquire takes n bytes, waiting until they fit or stop is closed; paused
// is set while it waits.
func (b *Budget) acquire(n int64, stop <-chan struct{}, paused *atomic.Bool) bool {
	if b.tryTake(n, false) {
		return true
	}
	b.mu.Lock()
	b.waiters.Add(1)
	defer b.waiters.Add(-1)
	for {
		// Checked with waiters counted, so a give either precedes this
		// check or sees the waiter and wakes it.
		if b.tryTake(n, false) {
			b.mu.Unlock()
			return true
		}
		if b.sig == nil {
			b.sig = make(chan struct{})
		}
		ch := b.sig
		b.mu.Unlock()
		paused.Store(true)
		select {
		case <-ch:
		case <-stop:
			return false
		}
		b.mu.Lock()
	}
}

// give returns n bytes and wakes waiters.
func (b *Budget) give(n int64) {
	if n == 0 {
		return
	}
	b.used.Add(-n)
	if b.waiters.Load() > 0 {
		b.mu.Lock()
		if b.sig != nil {
			close(b.sig)
			b.sig = nil
		}
		b.mu.Unlock()
	}
}

// memAccount is what one connection holds: of its own budget, and the
// same bytes of the shared one. held counts the bytes taken from shared
// and not given back, with heldClosed set once the connection closed and
// gave them back: one atomic word, so the reader, the workers and the
// writer account without a lock (several times per call).
type memAccount struct {
	own    *Budget
	shared *Budget // nil: none
	held   atomic.Int64
}

// heldClosed is what a closed account's held word is set to: the bytes
// were given back at close. Counts added after it, of either sign, keep
// the word far below any count and far from wrapping around (isClosed),
// so that adding is one atomic add, not a compare-and-swap loop that
// retries while the reader, the workers and the writer account at once.
const heldClosed = math.MinInt64 / 2

func isClosed(h int64) bool { return h < math.MinInt64/4 }

// addHeld adds n to held unless the account is closed; it reports whether
// it did.
func (m *memAccount) addHeld(n int64) bool {
	return !isClosed(m.held.Add(n))
}

// reserve takes n bytes for an incoming request, waiting while a budget
// is spent; the reader does not read meanwhile, and keep-alive does not
// count the pause as silence. It reports false if the connection closed
// while waiting.
func (c *Conn) reserve(n int) bool {
	m := &c.mem
	if !m.own.tryTake(int64(n), false) {
		c.flushPending() // queued answers of inline calls hold budget
		defer c.readPaused.Store(false)
		if !m.own.acquire(int64(n), c.closed, &c.readPaused) {
			return false
		}
	}
	if m.shared == nil {
		return true
	}
	if !m.shared.tryTake(int64(n), false) {
		c.flushPending()
		defer c.readPaused.Store(false)
		if !m.shared.acquire(int64(n), c.closed, &c.readPaused) {
			m.own.give(int64(n))
			return false
		}
	}
	if !m.addHeld(int64(n)) { // closed meanwhile: it gave back what it held, not this
		m.shared.give(int64(n))
		return false
	}
	return true
}

// reserveEarly takes n bytes for a frame still arriving, without
// waiting, when both budgets keep half of themselves after it and no one
// waits for either: a frame on its way may not crowd out the requests
// that arrived (see grantFrame).
func (c *Conn) reserveEarly(n int) bool {
	m := &c.mem
	if m.own.waiters.Load() > 0 || (m.shared != nil && m.shared.waiters.Load() > 0) {
		return false
	}
	if !m.own.tryTakeHalf(int64(n)) {
		return false
	}
	if m.shared == nil {
		return true
	}
	if !m.shared.tryTakeHalf(int64(n)) {
		m.own.give(int64(n))
		return false
	}
	if !m.addHeld(int64(n)) {
		m.shared.give(int64(n))
		m.own.give(int64(n))
		return false
	}
	return true
}

// charge takes n bytes without waiting (a result that exists already).
func (c *Conn) charge(n int) {
	if n == 0 {
		return
	}
	m := &c.mem
	m.own.tryTake(int64(n), true)
	if m.shared == nil {
		return
	}
	if m.addHeld(int64(n)) {
		m.shared.tryTake(int64(n), true)
	}
}

// unreserve gives n bytes back.
func (c *Conn) unreserve(n int) {
	if n == 0 {
		return
	}
	m := &c.mem
	m.own.give(int64(n))
	if m.shared == nil {
		return
	}
	if m.addHeld(-int64(n)) { // once closed, given back at close
		m.shared.give(int64(n))
	}
}

// closeAccount gives back what a closed connection held of the shared
// budget: its requests and unwritten results are gone.
func (m *memAccount) closeAccount() {
	if m.shared == nil {
		return
	}
	if h := m.held.Swap(heldClosed); !isClosed(h) {
		m.shared.give(h)
	}
}
