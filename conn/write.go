package conn

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/transport"
	"github.com/arbor-rpc/arbor/wire"
)

// lockForAppend takes the write lock and waits while the queue is over its
// bound. It reports false (lock released) if the connection failed.
func (c *Conn) lockForAppend() error { return c.lockForAppendCtx(nil) }

// lockForAppendCtx is lockForAppend for a call: it stops waiting when ctx
// (nil: none) ends, with ctx's error (lock released).
func (c *Conn) lockForAppendCtx(ctx context.Context) error {
	c.wmu.Lock()
	full := func() bool { return len(c.wbuf)+c.wsegBytes >= c.cfg.MaxPendingWrite && c.writing && c.werr == nil }
	if ctx != nil && ctx.Done() != nil && full() {
		stop := context.AfterFunc(ctx, func() {
			c.wmu.Lock()
			c.wcond.Broadcast()
			c.wmu.Unlock()
		})
		defer stop()
	}
	for full() {
		if ctx != nil && ctx.Err() != nil {
			c.wmu.Unlock()
			return status.FromError(ctx.Err())
		}
		c.wcond.Wait()
	}
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return err
	}
	return nil
}

// flushLocked is called with wmu held after appending frames, and returns
// with it released. When this connection has a single call in flight, the
// calling goroutine writes at once (no hand-off, lowest latency). Under
// load it leaves the write to the writer goroutine, which runs after the
// other ready goroutines have queued their frames too, so one syscall
// carries many frames.
func (c *Conn) flushLocked() {
	if c.writing {
		c.wmu.Unlock() // the active writer takes our frame along
		return
	}
	if c.inflight.Load() > 1 {
		c.startWriterLocked()
		c.wmu.Unlock()
		select {
		case c.wsig <- struct{}{}:
		default: // already signalled
		}
		return
	}
	c.writeLockedBy(true)
}

// flushLazyLocked is flushLocked for stream messages: it always leaves the
// write to the writer goroutine (unless a write is in progress), since a
// sender that streams back to back would otherwise pay a syscall per
// message; messages queued meanwhile leave together.
func (c *Conn) flushLazyLocked() {
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.startWriterLocked()
	c.wmu.Unlock()
	select {
	case c.wsig <- struct{}{}:
	default:
	}
}

// writeLocked writes everything queued, including frames queued while it
// writes. Called with wmu held and writing false; returns with wmu released.
func (c *Conn) writeLocked() { c.writeLockedBy(false) }

// writeLockedBy is writeLocked; caller says a goroutine with other
// business writes (flushLocked: a call, a handler's answer), which on a
// socket that does not take everything at once leaves the rest to the
// writer goroutine rather than wait for room.
func (c *Conn) writeLockedBy(caller bool) {
	c.writing = true
	for (len(c.wbuf) > 0 || len(c.wsegs) > 0) && c.werr == nil {
		buf, charged, segs := c.wbuf, c.wcharged, c.wsegs
		early := c.ec != nil && c.wsafe == len(buf) && len(segs) == 0
		c.wbuf, c.wcharged, c.wsafe = c.wspare[:0], 0, 0
		if len(segs) > 0 {
			c.wsegs, c.wsegBytes = c.wsegSpare[:0], 0
			c.wflight = c.wgen
			c.wgen++
		} else if len(buf) < c.minWrite {
			buf = wire.AppendPad(buf, c.minWrite-len(buf))
		}
		c.wmu.Unlock()
		var err error
		var n int64
		tried, held := false, false // a TryWrite: it may have written part of buf
		switch {
		case len(segs) > 0:
			n, err = c.writeVec(buf, segs)
		case early: // only idempotent calls: they may go in 0-RTT data
			_, err = c.ec.WriteEarly(buf)
		case caller && c.try != nil:
			var m int
			m, held, err = c.try.TryWrite(buf)
			n, tried = int64(m), true
		default:
			var m int
			m, err = c.nc.Write(buf) // waits for the handshake on an EarlyConn
			n = int64(m)
		}
		c.wmu.Lock()
		cut := c.wcut && c.uncutLocked(err, buf, segs, n)
		if cut {
			err = nil
		} else if tried && err == nil && n < int64(len(buf)) {
			c.requeueLocked(buf, nil, n) // the socket was full (TryWrite)
			cut = true
		} else if tried && err == nil && held {
			// TLS took it all but holds the end of a record the socket
			// had no room for: only a write sends it, so the writer
			// goroutine gets one, a PAD frame if nothing else is queued.
			if len(c.wbuf) == 0 && len(c.wsegs) == 0 {
				c.wbuf = wire.AppendPad(c.wbuf, wire.HeaderSize)
			}
			cut = true
		}
		if cut {
			// The rest is queued again, copied: the results in it hold
			// their memory until it is written.
			c.wcharged += charged
		} else {
			c.unreserve(charged) // the results in buf hold memory no more
		}
		if len(segs) > 0 {
			for _, s := range segs {
				if s.recycle {
					putBig(s.b)
				}
			}
			clear(segs) // drop the references: their owners may reuse them now
			c.wsegSpare = segs[:0]
			c.wflight = 0
		}
		if cap(buf) <= 1<<20 { // don't pin a burst's buffer forever
			c.wspare = buf[:0]
		} else {
			c.wspare = nil
		}
		if err != nil && c.werr == nil {
			c.werr = c.lostConnection(err)
		}
		c.wcond.Broadcast()
		if cut {
			// Whoever was stuck in the write has been let go (or never
			// waited); the rest is the writer goroutine's (this may be it).
			c.writing = false
			c.startWriterLocked()
			c.wmu.Unlock()
			select {
			case c.wsig <- struct{}{}:
			default:
			}
			return
		}
	}
	c.writing = false
	werr := c.werr
	c.wmu.Unlock()
	if werr != nil {
		c.closeWith(status.FromError(werr))
	}
}

// bigWrite is the payload size above which a frame's payload is queued by
// reference and written from where it lies (one writev with the frames
// around it) instead of being copied into the write buffer.
const bigWrite = 64 << 10

// wseg is a payload queued by reference.
type wseg struct {
	at      int // its place in wbuf: after wbuf[:at]
	b       []byte
	recycle bool // b goes back to bigBufs once written (a result's buffer)
}

// bigBufs recycles the buffers large results are encoded into (see
// Conn.serve): a server answering large calls does not allocate a new one
// per call. Its entries go with the GC, as any sync.Pool's.
var bigBufs sync.Pool // of *[]byte

// maxBigBuf bounds the buffers kept in bigBufs.
const maxBigBuf = 8 << 20

// getBig returns an empty buffer of capacity at least n: a recycled one
// if the pool has one large enough, else a new one.
func getBig(n int) []byte {
	if p, _ := bigBufs.Get().(*[]byte); p != nil {
		if cap(*p) >= n {
			return (*p)[:0]
		}
		bigBufs.Put(p) // too small for this one; maybe not for the next
	}
	return make([]byte, 0, n)
}

// putBig gives b back to bigBufs; no one may use it afterwards.
func putBig(b []byte) {
	if cap(b) <= maxBigBuf {
		b = b[:0]
		bigBufs.Put(&b)
	}
}

// queueRef queues b by reference after what wbuf holds now, and returns
// the batch it will leave in (see releaseRef). Called with wmu held. The
// owner of b must not change it until the batch has been written (or
// dropped): see releaseRef.
func (c *Conn) queueRef(b []byte) uint64 {
	c.wsegs = append(c.wsegs, wseg{at: len(c.wbuf), b: b})
	c.wsegBytes += len(b)
	return c.wgen
}

// releaseRef makes sure that the connection holds no more reference to b,
// queued in batch gen: a batch still queued gets a copy of b instead; a
// batch being written is cut where it is (cutLocked: the writer copies
// the rest and goes on): at once on a plain socket and QUIC, and over TLS
// after the chunk in flight, whose records the socket has not taken
// wait below TLS (a Cutter).
// Then b's owner may reuse it.
func (c *Conn) releaseRef(gen uint64, b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if gen == c.wgen { // still queued: the writer has not taken it
		for i := range c.wsegs {
			if len(c.wsegs[i].b) > 0 && len(b) > 0 && &c.wsegs[i].b[0] == &b[0] {
				c.wsegs[i].b = append([]byte(nil), b...)
			}
		}
		return
	}
	if c.wflight == gen && !c.wcut && c.wdeadline.IsZero() {
		c.cutLocked()
	}
	for c.wflight == gen {
		c.wcond.Wait()
	}
}

// pastDeadline is a write deadline that has passed: setting it wakes a
// write blocked on the socket at once.
var pastDeadline = time.Unix(1, 0)

// cutLocked asks the write in progress to stop where it is (releaseRef:
// its caller gave up and wants its buffer back). The writer then copies
// what is left of its batch and goes on from the copy (uncutLocked).
// Called with wmu held, as uncutLocked is, so that the deadline set here
// is cleared before any later write.
func (c *Conn) cutLocked() {
	c.wcut = true
	c.wcutSig.Store(true)
	if c.cutWrites {
		_ = c.nc.SetWriteDeadline(pastDeadline)
	} else if cw, ok := c.try.(transport.Cutter); ok {
		cw.Cut() // TLS: the chunk in flight ends at once, its rest held below TLS
	}
}

// errWriteCut ends a chunked write that stopped between two chunks
// because a cut was asked for.
var errWriteCut = errors.New("conn: write cut")

// cutChunk is the size of the pieces in which large payloads are written
// on transports without writev (TLS, QUIC): over TLS, which a deadline
// cannot cut, what a cut holds in memory below TLS (a Cutter's) or,
// without one, how much it waits for.
const cutChunk = 128 << 10

// uncutLocked clears a cut asked for while the batch (buf with segs in
// their places) was being written, n bytes of it out, err how the write
// ended. It reports whether the write was cut short: then what was not
// written is queued again, copied, ahead of what was queued since (the
// frames stay whole on the wire), and err is not the connection's.
func (c *Conn) uncutLocked(err error, buf []byte, segs []wseg, n int64) bool {
	c.wcut = false
	c.wcutSig.Store(false)
	if c.cutWrites {
		_ = c.nc.SetWriteDeadline(c.wdeadline)
	} else if cw, ok := c.try.(transport.Cutter); ok {
		cw.EndCut(c.wdeadline)
	}
	switch {
	case err == errWriteCut: // between two chunks
	case !c.cutWrites || err == nil || !errors.Is(err, os.ErrDeadlineExceeded):
		return false // it ended before the cut, or failed for its own reasons
	case !c.wdeadline.IsZero() && !time.Now().Before(c.wdeadline):
		// lastWrites' own deadline has passed: the timeout may be its,
		// the connection's failure. (One set after the cut stopped the
		// write, not yet due, is not what stopped it.)
		return false
	}
	c.requeueLocked(buf, segs, n)
	return true
}

// requeueLocked queues again, copied, what of the batch (buf with segs
// in their places) is past its first n bytes, ahead of what was queued
// since.
func (c *Conn) requeueLocked(buf []byte, segs []wseg, n int64) {
	size := len(buf)
	for _, s := range segs {
		size += len(s.b)
	}
	rest := make([]byte, 0, size-int(n)+len(c.wbuf))
	skip := n
	add := func(b []byte) {
		if skip >= int64(len(b)) {
			skip -= int64(len(b))
			return
		}
		rest = append(rest, b[skip:]...)
		skip = 0
	}
	prev := 0
	for _, s := range segs {
		add(buf[prev:s.at])
		add(s.b)
		prev = s.at
	}
	add(buf[prev:])
	moved := len(rest)
	rest = append(rest, c.wbuf...)
	for i := range c.wsegs {
		c.wsegs[i].at += moved
	}
	c.wbuf = rest
	c.wsafe = 0
}

// writeVec writes buf with the queued payloads segs in their places, in
// one writev on a plain socket, in chunks elsewhere (writeChunks).
func (c *Conn) writeVec(buf []byte, segs []wseg) (int64, error) {
	vec := c.wvec[:0]
	prev := 0
	for _, s := range segs {
		vec = append(vec, buf[prev:s.at], s.b)
		prev = s.at
	}
	if prev < len(buf) {
		vec = append(vec, buf[prev:])
	}
	c.wvec = vec[:0]
	var n int64
	var err error
	if c.vecWrites {
		n, err = vec.WriteTo(c.nc) // one writev; a deadline cuts it
	} else {
		n, err = c.writeChunks(vec)
	}
	clear(c.wvec[:cap(c.wvec)])
	return n, err
}

// writeChunks writes vec in pieces of at most cutChunk bytes, stopping
// with errWriteCut between two when a cut is asked for.
func (c *Conn) writeChunks(vec net.Buffers) (int64, error) {
	var n int64
	for _, b := range vec {
		for len(b) > 0 {
			if c.wcutSig.Load() {
				return n, errWriteCut
			}
			m, err := c.nc.Write(b[:min(len(b), cutChunk)])
			n += int64(m)
			if err != nil {
				return n, err
			}
			b = b[m:]
		}
	}
	return n, nil
}

// flushNow writes everything queued before returning (or until the
// connection fails).
func (c *Conn) flushNow() {
	c.wmu.Lock()
	for (c.writing || len(c.wbuf) > 0 || len(c.wsegs) > 0) && c.werr == nil {
		if !c.writing {
			c.writeLocked()
			c.wmu.Lock()
			continue
		}
		c.wcond.Wait()
	}
	c.wmu.Unlock()
}

// send queues one whole pre-encoded frame and flushes.
func (c *Conn) send(frame []byte) error {
	if err := c.lockForAppend(); err != nil {
		return err
	}
	c.wbuf = append(c.wbuf, frame...)
	c.flushLocked()
	return nil
}

// sendCancel tells the peer to stop serving call id, and why: a deadline
// (the handler then sees DeadlineExceeded) or a plain cancel. It does not
// wait for room in the queue (as sendCredit): a cancelled call returns at
// once, and a CANCEL is small and sent once per call.
func (c *Conn) sendCancel(id uint64, cause error) {
	c.wmu.Lock()
	if c.werr != nil {
		c.wmu.Unlock()
		return
	}
	if errors.Is(cause, context.DeadlineExceeded) {
		c.wbuf = wire.AppendFrame(c.wbuf, wire.TypeCancel, 0, id, []byte{byte(status.DeadlineExceeded)})
	} else {
		c.wbuf = wire.AppendHeader(c.wbuf, wire.Header{Type: wire.TypeCancel, ID: id})
	}
	c.flushLocked()
}

// sendPing never waits for queue space and never writes itself: the
// keep-alive loop and the reader must not block behind a stuck socket (the
// keep-alive timeout is what unsticks it). A PONG is dropped when the queue
// is over its bound, so a peer that floods PINGs without reading cannot
// grow it.
func (c *Conn) sendPing(pong bool, data uint64) {
	c.wmu.Lock()
	if c.werr != nil || (pong && len(c.wbuf) >= c.cfg.MaxPendingWrite) {
		c.wmu.Unlock()
		return
	}
	c.wbuf = wire.AppendPing(c.wbuf, pong, data)
	c.flushLazyLocked()
}

func (c *Conn) sendGoAway(code uint32, msg string) {
	c.smu.Lock()
	last := c.lastIn
	c.smu.Unlock()
	if c.lockForAppend() != nil {
		return
	}
	c.wbuf = wire.AppendGoAway(c.wbuf, wire.GoAway{LastID: last, Code: code, Message: []byte(msg)})
	c.flushLocked()
	c.observeGoAway(true, code, []byte(msg))
}
