package conn

import (
	"runtime"
	"time"
)

// The writer goroutine (writeLoop) writes the frames queued under load
// (see flushLocked) and stream messages (flushLazyLocked). A connection
// whose writes all go inline (one call at a time, or none) never needs
// it, so it is started on demand, by the first frame left to it, and
// exits once it has had nothing to do for writerIdle: an idle connection
// holds no writer goroutine and no writer stack.

// writerIdle is how long the writer goroutine waits for work before it
// exits. Restarting it costs a goroutine start, about a microsecond.
const writerIdle = time.Second

// startWriterLocked starts the writer goroutine if it is not running;
// the caller then wakes it (wsig). Called with wmu held, after queueing
// the frames left to the writer: the writer decides to exit under wmu,
// and not while frames are queued, so none is left behind by a writer
// that exits just before its wake-up arrives (a stale wake-up only makes
// the next writer look at an empty queue).
func (c *Conn) startWriterLocked() {
	if c.wloop || c.werr != nil { // running, or closing: nothing more is written
		return
	}
	// Safe against Close's loops.Wait: with werr unset, the reader
	// (which ends only after closeWith has set werr) still holds its
	// count.
	c.wloop = true
	c.loops.Add(1)
	go c.writeLoop()
}

// writeLoop writes frames queued under load (see flushLocked) until it
// has been idle for writerIdle or the connection closes.
func (c *Conn) writeLoop() {
	defer c.loops.Done()
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	woken := false // since the timer was last set: one Reset per period, not per wake-up
	for {
		select {
		case <-c.wsig:
			woken = true
		case <-idle.C:
			if !woken && c.writerExit() {
				return
			}
			woken = false
			idle.Reset(writerIdle)
			// and write what may be queued, as on a wake-up
		case <-c.closed:
			return // wloop stays set: no writer starts again
		}
		// Let the goroutines that are ready now queue their frames first.
		runtime.Gosched()
		c.wmu.Lock()
		if c.writing || (len(c.wbuf) == 0 && len(c.wsegs) == 0) {
			c.wmu.Unlock()
			continue
		}
		c.writeLocked()
	}
}

// writerExit ends the writer goroutine unless a wake-up is pending or
// frames are queued that no write in progress will take, and reports
// whether it did. An idle connection keeps small write buffers only: the
// ones a burst grew go (trimWriteLocked).
func (c *Conn) writerExit() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.wsig) > 0 || (!c.writing && (len(c.wbuf) > 0 || len(c.wsegs) > 0)) {
		return false
	}
	c.wloop = false
	c.trimWriteLocked()
	return true
}

// idleWriteBuf is the capacity of write buffers kept on an idle
// connection; larger ones (grown by a burst) are dropped.
const idleWriteBuf = 4 << 10

// trimWrite is trimWriteLocked for the keep-alive, whose quiet ticks
// trim connections whose writes all went inline (no writer to exit).
func (c *Conn) trimWrite() {
	c.wmu.Lock()
	c.trimWriteLocked()
	c.wmu.Unlock()
}

// trimWriteLocked drops the write buffers a burst left behind, when no
// write is in progress and nothing is queued. Called with wmu held.
func (c *Conn) trimWriteLocked() {
	if c.writing || len(c.wbuf) > 0 || len(c.wsegs) > 0 {
		return
	}
	if cap(c.wspare) > idleWriteBuf {
		c.wspare = nil
	}
	if cap(c.wbuf) > idleWriteBuf {
		c.wbuf = nil
	}
	c.wsegSpare, c.wvec = nil, nil
}
