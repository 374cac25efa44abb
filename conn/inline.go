package conn

import (
	"errors"
	"sync/atomic"
	"time"
)

// Calls run inline: a plain unary call to a function whose calls have
// proven quick runs on the reading goroutine itself, as a hand-written
// echo server would, instead of being handed to a worker. That saves the
// hand-off (a goroutine wake-up and a select per call), and the answers
// of a burst leave in one write once no whole frame is buffered.
//
// Two things keep a handler from stalling the connection's reader:
//   - a function earns inline runs by a streak of quick calls and loses
//     them when its calls turn slow (InlineStat), earning them back with
//     a longer streak each time;
//   - a watchdog: when an inline call has run for inlineStall (up to
//     twice that), a new reader takes over the connection and the
//     goroutine stuck in the handler becomes an ordinary worker, finishing
//     its call and exiting. So a handler that blocks (a lock, I/O, a
//     callback on this very connection, whose answer only the reader can
//     read) costs the other calls on its connection at most that long,
//     and twice at most before its function loses inline runs.

// Inliner is implemented by handlers that keep a record of each function's
// call durations, letting quick functions run inline. InlineStat returns
// the record of the function in (a plain unary call: no target, stream
// or promises), or nil for a call that must never run inline. It is
// called on the reading goroutine and must not block.
type Inliner interface {
	InlineStat(in *Incoming) *InlineStat
}

// InlineStat is one function's record of how quickly its calls ran: the
// zero value is a function that has not yet earned inline runs. Safe for
// concurrent use; it is approximate by design (racing updates may lose a
// count, never break an invariant).
//
// Single slow calls are the machine's doing as often as the handler's (a
// garbage collection, the OS preempting a thread): they reset a streak
// but do not end inline runs. A function loses them when slow calls come
// often: each adds slowDebt to a debt that quick calls pay back one by
// one, and a debt over maxDebt ends them; two calls that held the reader
// until the watchdog acted end them too. While inline, one call in
// timeEvery is timed (the watchdog sees the stalls of the others).
type InlineStat struct {
	on     atomic.Bool
	streak atomic.Int32 // quick calls in a row (while not inline)
	need   atomic.Int32 // streak that turns on inline runs (0: firstStreak)
	debt   atomic.Int32 // while inline: see above
}

const (
	// quickCall is the longest a call may run and count as quick;
	// slowCall the shortest that counts as slow. Quick is a few times a
	// hand-off's cost: running such calls one after another on the reader
	// beats spreading them over cores, and a function with more work per
	// call keeps its calls running in parallel on workers.
	quickCall = 10 * time.Microsecond
	slowCall  = 500 * time.Microsecond
	// firstStreak is the streak of quick calls a function needs first;
	// each time it loses inline runs the streak it needs doubles, up to
	// maxStreak.
	firstStreak = 64
	maxStreak   = 1 << 16
	// slowDebt is a slow call's debt; maxDebt ends inline runs.
	slowDebt = 64
	maxDebt  = 4 * slowDebt
	// inlineStall is how long an inline call may hold the reader before
	// the watchdog hands the reading to a new goroutine.
	inlineStall = time.Millisecond
	// timeEvery: while inline, one call in timeEvery is timed.
	timeEvery = 8
	// inlineFlushAt is how much the answers of inline calls may queue
	// before the reader writes them without waiting for the burst's end.
	inlineFlushAt = 32 << 10
)

// Inline reports whether the function's calls run inline now.
func (s *InlineStat) Inline() bool { return s.on.Load() }

// record notes a call's duration.
func (s *InlineStat) record(d time.Duration) {
	if !s.on.Load() {
		switch {
		case d <= quickCall:
			need := s.need.Load()
			if need == 0 {
				need = firstStreak
			}
			if s.streak.Add(1) >= need {
				s.debt.Store(0)
				s.on.Store(true)
			}
		case d > slowCall:
			s.streak.Store(0)
		}
		return
	}
	switch {
	case d > slowCall:
		s.owe(slowDebt)
	case d <= quickCall:
		if s.debt.Load() > 0 {
			s.debt.Add(-1)
		}
	}
}

// stalled notes an inline call that held the reader until the watchdog
// handed the reading on: two such end inline runs.
func (s *InlineStat) stalled() { s.owe(maxDebt/2 + 1) }

func (s *InlineStat) owe(debt int32) {
	if s.debt.Add(debt) > maxDebt && s.on.CompareAndSwap(true, false) {
		s.streak.Store(0)
		s.need.Store(min(2*max(s.need.Load(), firstStreak), maxStreak))
	}
}

// errHandedOff ends a reading goroutine whose inline call outlived
// inlineStall: a new reader reads the connection now.
var errHandedOff = errors.New("reading handed to a new goroutine")

// inlineStat is the record of sc's function when its call may run inline
// (nil otherwise).
func (c *Conn) inlineStat(sc *serverCall) *InlineStat {
	in := &sc.in
	if in.HasTarget || in.Stream != nil || len(in.Promises) > 0 || len(in.Caps) > 0 || in.Early || sc.retained {
		return nil
	}
	il, ok := c.cfg.Handler.(Inliner)
	if !ok {
		return nil
	}
	return il.InlineStat(in)
}

// runInline serves sc on the reading goroutine. Its answer is queued, not
// written: the reader writes once no whole frame is buffered (see
// readFrames). It returns errHandedOff when the watchdog gave the reading
// to a new goroutine meanwhile; the answer is then flushed here.
func (c *Conn) runInline(sc *serverCall) error {
	st := sc.st
	if c.rcount++; c.rcount%timeEvery != 0 {
		sc.st = nil // not timed (serve times calls with a record)
	}
	v := c.rstate.Load() // this reader's generation, not inline
	c.inlineSeq.Add(1)
	c.rstate.Store(v | 1)
	if c.wdArmed.CompareAndSwap(false, true) {
		c.armWatchdog()
	}
	c.serve(sc, true)
	if c.rstate.CompareAndSwap(v|1, v) {
		c.rpend = true
		return nil
	}
	// A new reader runs; this goroutine is a worker that is done.
	st.stalled()
	c.wmu.Lock()
	c.flushLocked()
	return errHandedOff
}

// flushPending writes the answers inline calls queued, on the reader
// (unless a write is in progress: it takes them along).
func (c *Conn) flushPending() {
	if !c.rpend {
		return
	}
	c.rpend = false
	c.wmu.Lock()
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.writeLocked()
}

// armWatchdog starts the watchdog's timer.
func (c *Conn) armWatchdog() {
	if t := c.wd.Load(); t != nil {
		t.Reset(inlineStall)
		return
	}
	// Made on the reader's first inline call; the callback loads it
	// only after this store (it first fires an hour from now).
	t := time.AfterFunc(time.Hour, c.watchdog)
	c.wd.Store(t)
	t.Reset(inlineStall)
}

// watchdog runs every inlineStall while inline calls go on: when the
// inline call running now is the one it saw last time, that call has held
// the reader for at least inlineStall, and it starts a new reader. It
// reads no clock: the inline path pays for none. Left to sleep when no
// call is inline (the next inline call arms it again).
func (c *Conn) watchdog() {
	for {
		v := c.rstate.Load()
		if v&1 == 0 { // not inline now
			c.wdArmed.Store(false)
			// An inline call that began just now may have seen the
			// timer armed and left it: take over arming if so.
			if c.rstate.Load()&1 == 0 || !c.wdArmed.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		seq := c.inlineSeq.Load()
		if c.wdSeq.Swap(seq) != seq { // another call than last time
			c.wd.Load().Reset(inlineStall)
			return
		}
		// Also when the connection is closed: a handler that closes its
		// own connection waits in Close for the reader, which is itself;
		// the new reader fails at once and lets Close return.
		if c.rstate.CompareAndSwap(v, (v|1)+1) { // next generation, not inline
			c.cfg.Logger.Debug("arbor: an inline call held the reader; a new goroutine reads the connection", "remote", c.nc.RemoteAddr().String())
			go c.readFrames() // takes over the reader's place in c.loops
		}
		select {
		case <-c.closed: // nothing more to watch
			c.wdArmed.Store(false)
		default:
			c.wd.Load().Reset(inlineStall)
		}
		return
	}
}
