package bridge

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/arbor-rpc/arbor"
)

// The native gRPC connection's writer. Frames are appended to one queue
// under the connection's lock; whoever finds no write in progress writes
// the whole queue in one syscall, and frames queued meanwhile leave with
// the next. When no other stream is open the goroutine that queued writes
// at once (lowest latency); otherwise, and for the reader's replies, the
// write is handed to the connection's writer goroutine, which yields once
// before a small write so that the other ready handlers queue theirs and
// one syscall carries them all (as package conn and grpc-go do). The queue is
// bounded (MaxPendingWrite): beyond it senders wait, so a client that
// reads nothing stops being served instead of growing it.

// staticBlock is an HPACK block of fields sent never-indexed: it leaves
// the connection's dynamic table alone, so the same bytes serve every
// connection.
func staticBlock(fields ...string) []byte {
	var b bytes.Buffer
	e := hpack.NewEncoder(&b)
	for i := 0; i < len(fields); i += 2 {
		e.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1], Sensitive: true})
	}
	return b.Bytes()
}

// The blocks every call sends: the response headers and the trailers of
// a success without trailers of the handler's.
var (
	grpcHeadersBlock = staticBlock(":status", "200", "content-type", "application/grpc")
	grpcOKBlock      = staticBlock("grpc-status", "0")
)

// lockForAppend takes the lock once the queue has room; it reports the
// connection's failure instead (lock released).
func (c *gconn) lockForAppend() error {
	c.mu.Lock()
	for len(c.wbuf) >= c.cfg.MaxPendingWrite && c.writing && c.werr == nil {
		c.cond.Wait()
	}
	if c.werr != nil {
		err := c.werr
		c.mu.Unlock()
		return err
	}
	return nil
}

// flushLocked is called with mu held after queuing frames and returns
// with it released; lazy leaves the write to the writer goroutine.
func (c *gconn) flushLocked(lazy bool) {
	if c.writing {
		c.mu.Unlock() // the active writer takes our frames along
		return
	}
	if lazy || len(c.streams) > 1 {
		c.mu.Unlock()
		select {
		case c.wsig <- struct{}{}:
		default: // already signalled
		}
		return
	}
	c.writeLocked()
}

// flushEndLocked is flushLocked after a stream's last frames (the stream
// no longer counted): the write is made at once only when no other
// stream is open, else it joins the others'.
func (c *gconn) flushEndLocked() {
	if !c.writing && len(c.streams) == 0 {
		c.writeLocked()
		return
	}
	c.flushLocked(true)
}

// writeLocked writes the queue, including what is queued while it
// writes. Called with mu held and writing false; returns with it
// released. It closes the connection on a write error, or when asked to
// once the queue is out (after GOAWAY).
func (c *gconn) writeLocked() {
	c.writing = true
	for len(c.wbuf) > 0 && c.werr == nil {
		buf := c.wbuf
		c.wbuf = c.wspare[:0]
		timeout := c.wtimeout
		c.mu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(timeout))
		_, err := c.nc.Write(buf)
		c.mu.Lock()
		if cap(buf) <= 1<<20 { // don't pin a burst's buffer
			c.wspare = buf[:0]
		} else {
			c.wspare = nil
		}
		if err != nil && c.werr == nil {
			c.werr = err
		}
		c.cond.Broadcast()
	}
	c.writing = false
	c.cond.Broadcast()
	werr, closeIt := c.werr, c.werr != nil || c.closeAfter
	c.mu.Unlock()
	if closeIt {
		if werr == nil {
			werr = errGoneAway
		}
		c.closeNow(werr)
	}
}

var errGoneAway = errors.New("the connection closed after GOAWAY")

// writer is the connection's writer goroutine.
func (c *gconn) writer() {
	defer c.wwg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wsig:
		}
		c.mu.Lock()
		if len(c.wbuf) < minBatch && !c.writing && !c.closeAfter {
			// Little is queued: let the other ready handlers queue theirs
			// first, so that one write carries them all (as grpc-go's
			// loopy writer does).
			c.mu.Unlock()
			runtime.Gosched()
			c.mu.Lock()
		}
		if c.writing || (len(c.wbuf) == 0 && !c.closeAfter) {
			c.mu.Unlock()
			continue
		}
		c.writeLocked()
	}
}

// minBatch is the queue below which the writer yields before writing.
const minBatch = 1000

// appendFrameHeader appends an HTTP/2 frame header.
func appendFrameHeader(b []byte, n int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(n>>16), byte(n>>8), byte(n), byte(t), byte(flags), byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

// writeHeaderBlockLocked queues block as HEADERS and, beyond the peer's
// frame size, CONTINUATION frames (contiguous: the lock is held).
func (c *gconn) writeHeaderBlockLocked(id uint32, block []byte, end bool) {
	t := http2.FrameHeaders
	var flags http2.Flags
	if end {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), c.peerFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders // the same bit as CONTINUATION's
		}
		c.wbuf = appendFrameHeader(c.wbuf, n, t, f, id)
		c.wbuf = append(c.wbuf, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return
		}
		t, flags = http2.FrameContinuation, 0
	}
}

// writeWindowUpdate queues WINDOW_UPDATE.
func (c *gconn) writeWindowUpdate(id uint32, inc int64) {
	if c.lockForAppend() != nil {
		return
	}
	c.wfr.WriteWindowUpdate(id, uint32(inc))
	c.flushLocked(true)
}

// trailerBlockLocked encodes the trailers (or, trailersOnly, the whole
// response) of a call that ends with code.
func (c *gconn) trailerBlockLocked(trailersOnly bool, httpStatus int, code arbor.Code, msg string, details []byte, md arbor.Metadata) []byte {
	if code == arbor.OK && len(md) == 0 && !trailersOnly && !c.encPending {
		return grpcOKBlock
	}
	c.hbuf.Reset()
	c.encPending = false
	// Every field goes through the encoder, so that a dynamic table size
	// update it owes the peer opens the block.
	if trailersOnly {
		c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(httpStatus)})
		if httpStatus == 200 {
			c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
		}
	}
	c.enc.WriteField(hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(code))})
	if msg != "" {
		c.enc.WriteField(hpack.HeaderField{Name: "grpc-message", Value: percentEncode(msg), Sensitive: true})
	}
	if code != arbor.OK && len(details) > 0 {
		c.enc.WriteField(hpack.HeaderField{Name: "grpc-status-details-bin", Value: statusDetailsBin(code, msg, details), Sensitive: true})
	}
	for _, p := range md {
		c.enc.WriteField(hpack.HeaderField{Name: p.Key, Value: p.Value})
	}
	return c.hbuf.Bytes()
}

// sendMessage queues payload as one length-prefixed message on st (the
// response headers first), as the windows allow: it waits for the
// client's WINDOW_UPDATEs, the stream's end or its context's. With end
// the call's success trailers follow in the same write.
func (st *gstream) sendMessage(payload []byte, end bool, md arbor.Metadata) error {
	c := st.c
	if err := c.lockForAppend(); err != nil {
		return st.sendErr(err)
	}
	if err := st.sendableLocked(); err != nil {
		c.mu.Unlock()
		return err
	}
	if !st.headersSent {
		block := grpcHeadersBlock
		if c.encPending {
			c.hbuf.Reset()
			c.encPending = false
			c.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			c.enc.WriteField(hpack.HeaderField{Name: "content-type", Value: "application/grpc"})
			block = c.hbuf.Bytes()
		}
		c.writeHeaderBlockLocked(st.id, block, false)
		st.headersSent = true
	}
	var prefix [5]byte
	binary.BigEndian.PutUint32(prefix[1:], uint32(len(payload)))
	total := 5 + len(payload)
	for off := 0; off < total; {
		for st.sendWindow <= 0 || c.sendWindow <= 0 || (len(c.wbuf) >= c.cfg.MaxPendingWrite && c.writing) {
			if len(c.wbuf) > 0 && !c.writing {
				c.writeLocked() // let the queue out before waiting on the peer
				c.mu.Lock()
			} else {
				st.waitLocked()
			}
			if err := st.sendableLocked(); err != nil {
				c.mu.Unlock()
				return err
			}
		}
		if len(c.wbuf) >= c.cfg.MaxPendingWrite && !c.writing {
			c.writeLocked()
			c.mu.Lock()
			if err := st.sendableLocked(); err != nil {
				c.mu.Unlock()
				return err
			}
			continue
		}
		n := min(total-off, int(min(st.sendWindow, c.sendWindow)), c.peerFrame)
		c.wbuf = appendFrameHeader(c.wbuf, n, http2.FrameData, 0, st.id)
		k := n
		if off < 5 {
			p := min(5-off, k)
			c.wbuf = append(c.wbuf, prefix[off:off+p]...)
			k -= p
			off += p
		}
		if k > 0 {
			c.wbuf = append(c.wbuf, payload[off-5:off-5+k]...)
			off += k
		}
		st.sendWindow -= int64(n)
		c.sendWindow -= int64(n)
		st.partial = off < total
	}
	if end {
		st.endLocked(arbor.OK, "", nil, md, true)
	}
	if end {
		c.flushEndLocked()
		return nil
	}
	c.flushLocked(st.m.kind != arbor.KindUnary)
	return nil
}

// finish ends st with code: trailers, or a trailers-only response when
// nothing was sent; the first end wins. last says the handler has
// returned (or never ran).
func (st *gstream) finish(code arbor.Code, msg string, details []byte, md arbor.Metadata, last bool) {
	c := st.c
	if c.lockForAppend() != nil {
		return
	}
	if st.done {
		c.mu.Unlock()
		return
	}
	st.endLocked(code, msg, details, md, last)
	c.flushEndLocked()
}

// endLocked queues st's last frames. When the handler is done (last) the
// stream stops counting against MaxConcurrentStreams with them, so a
// client that saw its END_STREAM may open another at once; a stream whose
// handler still runs counts until it returns.
func (st *gstream) endLocked(code arbor.Code, msg string, details []byte, md arbor.Metadata, last bool) {
	c := st.c
	st.done = true
	if last {
		delete(c.streams, st.id)
		st.finalized = true
		if st.stopWake != nil {
			st.stopWake()
			st.stopWake = nil
		}
		if c.goingAway && len(c.streams) == 0 && !c.closed {
			c.closeAfter = true // the flush that follows closes
		}
	}
	if st.partial {
		// A message is partly out: trailers would end the stream inside
		// it, so it is reset, as gRPC servers do at a deadline.
		c.wfr.WriteRSTStream(st.id, http2.ErrCodeCancel)
		c.cond.Broadcast()
		return
	}
	block := c.trailerBlockLocked(!st.headersSent, 200, code, msg, details, md)
	c.writeHeaderBlockLocked(st.id, block, true)
	if !st.remoteDone {
		// The client is still sending: we no longer listen (as gRPC
		// servers do, NO_ERROR after the trailers).
		c.wfr.WriteRSTStream(st.id, http2.ErrCodeNo)
	}
	c.cond.Broadcast()
}

// refuse answers a stream the server does not take with a trailers-only
// response (httpStatus 200 with a gRPC status, or an HTTP error).
func (c *gconn) refuse(id uint32, ended bool, httpStatus int, code arbor.Code, msg string) {
	if c.lockForAppend() != nil {
		return
	}
	block := c.trailerBlockLocked(true, httpStatus, code, msg, nil, nil)
	c.writeHeaderBlockLocked(id, block, true)
	if !ended {
		c.wfr.WriteRSTStream(id, http2.ErrCodeNo)
	}
	c.flushLocked(true)
}
