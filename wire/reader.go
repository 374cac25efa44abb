package wire

import (
	"io"
	"math/bits"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Reader reads frames from a byte stream. The payload it returns aliases its
// internal buffer and is valid only until the next call to Next.
//
// A frame's length is trusted only as far as the limit: a payload larger
// than the read buffer is read into a buffer that grows with what has
// arrived, so a header that announces a large frame costs memory in
// proportion to the bytes the peer actually sends, unless the caller
// grants the frame its whole size (SetGrant), which it then accounts for.
//
// The read buffer follows the traffic: a Reader starts with a small
// buffer of its own (SmallBuffer bytes), takes a full-size one from a
// shared pool when a read fills the small one or a frame does not fit in
// it, and gives the full-size one back once it is empty, a read brought
// no more than the small buffer holds, and no read brought more for
// QuietPeriod. So a quiet connection (one call at a time, pings, or none)
// holds SmallBuffer bytes, not the full buffer, while a busy one reads
// many frames per syscall and does not switch back and forth (each
// switch to the small buffer costs a syscall more when traffic resumes).
type Reader struct {
	rd      io.Reader
	buf     []byte  // the read buffer: small[:] or a full-size one
	bufp    *[]byte // the full-size one's pool entry, while held
	r, w    int     // buf[r:w] is read and not yet consumed
	err     error   // the read error not yet reported (as bufio)
	size    int     // the full-size buffer's size
	lastN   int     // bytes the last read brought
	bigAt   int64   // when (Unix ns) a read last brought more than SmallBuffer
	quiet   int64   // QuietPeriod, in ns
	limit   uint32
	pending int    // bytes of the previous frame still to consume from buf
	big     []byte // payloads larger than the full-size buffer
	lastBig bool   // the last payload Next returned is in big's array (see Take)
	grant   func(Header) bool
	reads   uint64 // reads that brought bytes (Reads)
	small   [SmallBuffer]byte
}

// SmallBuffer is the read buffer of a quiet Reader: a small call, its
// answer, a ping fit in it.
const SmallBuffer = 512

// QuietPeriod is how long a Reader must have read no more than
// SmallBuffer bytes at a time before it gives its full-size buffer back.
const QuietPeriod = 250 * time.Millisecond

// Take hands the buffer of the payload the last Next returned to the
// caller, if that payload was too large for the read buffer (it was read
// into a buffer of its own), and reports whether it did: the reader then
// never reuses that buffer, so the payload stays valid after the next
// Next. A payload inside the read buffer cannot be taken (false).
func (r *Reader) Take() bool {
	if !r.lastBig {
		return false
	}
	r.big, r.lastBig = nil, false
	return true
}

// NewReader returns a Reader over r with a read buffer of bufSize bytes that
// refuses frames whose payload is larger than limit.
func NewReader(r io.Reader, bufSize int, limit uint32) *Reader {
	rr := &Reader{rd: r, limit: limit, size: max(bufSize, 16), quiet: int64(QuietPeriod)}
	rr.buf = rr.small[:min(rr.size, SmallBuffer)]
	return rr
}

// SetGrant sets what the Reader asks before it gives a large payload its
// whole buffer at once, which it does only once the first part of the
// payload has arrived (twice the read buffer) and only for payloads that
// would otherwise take more growth steps (over sixteen times the read
// buffer; smaller ones take their whole size at the next step): grant
// returns true when the caller accounts for the payload's size (a memory
// budget), false to make the buffer grow with what arrives, as without a
// grant. The grant spares a large payload the growth steps' copies.
func (r *Reader) SetGrant(grant func(Header) bool) { r.grant = grant }

// SetLimit changes the payload limit (after a HELLO exchange).
func (r *Reader) SetLimit(limit uint32) { r.limit = limit }

// BufferSize is the size of the read buffer the Reader holds now:
// SmallBuffer (or less) while the connection is quiet, the full size
// while it is busy.
func (r *Reader) BufferSize() int { return len(r.buf) }

// Peek returns up to n of the next bytes without consuming them (fewer
// at the end of the input), waiting for them like Next.
func (r *Reader) Peek(n int) []byte {
	r.consumePending()
	n = min(n, r.size)
	if r.ensure(n) != nil {
		return r.buf[r.r:r.w]
	}
	return r.buf[r.r : r.r+n]
}

// Buffered reports how many bytes are already read but not yet returned.
func (r *Reader) Buffered() int { return r.w - r.r - r.pending }

// Ready reports whether Next would return without waiting for input: a
// whole frame (or a malformed header, which Next reports) is buffered.
func (r *Reader) Ready() bool {
	at := r.r + r.pending
	if r.w-at < HeaderSize {
		return false
	}
	h, err := ParseHeader(r.buf[at:at+HeaderSize], r.limit)
	return err != nil || r.w-at-HeaderSize >= int(h.Length)
}

// Next reads one frame. A frame over the limit is reported before its
// payload is read or any buffer for it is allocated.
func (r *Reader) Next() (Header, []byte, error) {
	r.lastBig = false
	r.consumePending()
	if err := r.ensure(HeaderSize); err != nil {
		if err == io.EOF && r.w > r.r {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, nil, err
	}
	h, err := ParseHeader(r.buf[r.r:r.r+HeaderSize], r.limit)
	if err != nil {
		return h, nil, err
	}
	r.r += HeaderSize
	n := int(h.Length)
	if n == 0 {
		return h, nil, nil
	}
	if n <= r.size {
		if err := r.ensure(n); err != nil {
			return h, nil, unexpectedEOF(err)
		}
		r.pending = n
		return h, r.buf[r.r : r.r+n], nil
	}
	p, err := r.readBig(h)
	if err != nil {
		return h, nil, err
	}
	r.lastBig = true
	return h, p, nil
}

// consumePending drops the previous frame's payload from the buffer and,
// when the buffer is then empty and the connection quiet, gives a
// full-size buffer back: the payload Next returned last is dead by now.
func (r *Reader) consumePending() {
	r.r += r.pending
	r.pending = 0
	if r.r < r.w {
		return
	}
	r.r, r.w = 0, 0
	if (len(r.buf) > SmallBuffer || r.big != nil) && r.lastN <= SmallBuffer && time.Now().UnixNano()-r.bigAt >= r.quiet {
		if len(r.buf) > SmallBuffer {
			putReadBuf(r.bufp, r.buf)
			r.buf, r.bufp = r.small[:], nil
		}
		// A quiet connection does not keep a large payload's buffer
		// either, whichever buffer that payload was read past.
		r.big = nil
	}
}

// ensure reads until buf[r:w] holds n bytes (n <= r.size), taking a
// full-size buffer if the one held is too small. It returns the read
// error when the input ends first.
func (r *Reader) ensure(n int) error {
	if n > len(r.buf) {
		r.grow()
	}
	for r.w-r.r < n {
		if r.r > 0 { // slide what is left to the front: the read gets all the room (as bufio)
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
	return nil
}

// maxEmptyReads bounds the reads in a row that bring nothing (as bufio).
const maxEmptyReads = 100

// fill reads once into the free end of the buffer. A read that fills the
// small buffer means more is coming: the full-size buffer takes over.
func (r *Reader) fill() error {
	if r.err != nil {
		err := r.err
		r.err = nil
		return err
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			panic("wire: reader returned an invalid count")
		}
		r.w += n
		if n > 0 {
			r.reads++
			r.noteRead(n)
			if r.w == len(r.buf) && len(r.buf) < r.size {
				r.grow()
			}
		}
		if err != nil {
			if n > 0 {
				r.err = err // what was read first
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// Reads is the number of reads from the source that brought bytes: when
// it changes across Next, the frame came with a new read (a caller timing
// arrivals reads its clock then, once per read rather than per frame).
func (r *Reader) Reads() uint64 { return r.reads }

// noteRead records the size of a read that brought n > 0 bytes.
func (r *Reader) noteRead(n int) {
	r.lastN = n
	if n > SmallBuffer {
		r.bigAt = time.Now().UnixNano()
	}
}

// grow moves what is buffered into a full-size buffer.
func (r *Reader) grow() {
	if len(r.buf) >= r.size {
		return
	}
	bp := getReadBuf(r.size)
	b := *bp
	r.w = copy(b, r.buf[r.r:r.w])
	r.r = 0
	r.buf, r.bufp = b, bp
}

// readFull fills p from the buffer and then the input, as bufio.Reader
// reads: straight into p when what is left is at least a buffer's worth.
func (r *Reader) readFull(p []byte) error {
	for len(p) > 0 {
		if r.r == r.w {
			if len(p) >= len(r.buf) {
				if r.err != nil {
					err := r.err
					r.err = nil
					return err
				}
				n, err := io.ReadFull(r.rd, p)
				if n > 0 {
					r.reads++
					r.noteRead(n)
				}
				return err
			}
			r.r, r.w = 0, 0
			if err := r.fill(); err != nil {
				return err
			}
		}
		n := copy(p, r.buf[r.r:r.w])
		r.r += n
		p = p[n:]
	}
	return nil
}

// readBig reads the payload of h, more than the read buffer holds.
// Its length was checked against the limit, but the peer may still stop
// sending early: the buffer starts at twice the read buffer and grows
// only as it fills, four times at a step, or to n at once when that is at
// most twice the step, so what is allocated is at most about eight times
// what arrived (a 1 MiB frame grows 64 KiB → 256 KiB → 1 MiB, not by
// doubling). The steps short of n come from the shared pools when they
// are a pooled size (powers of two up to 1 MiB), and a grant (SetGrant)
// once the first step is full skips the ones between.
func (r *Reader) readBig(h Header) ([]byte, error) {
	n := int(h.Length)
	if cap(r.big) >= n {
		p := r.big[:n]
		if err := r.readFull(p); err != nil {
			return nil, unexpectedEOF(err)
		}
		return p, nil
	}
	var p []byte
	var pooled *[]byte // p's pool entry, while p is a step short of n
	if step := 2 * r.size; step < n && poolIndex(step) >= 0 {
		pooled = getReadBuf(step)
		p = (*pooled)[:0]
	} else {
		p = make([]byte, 0, min(n, step))
	}
	asked := false
	for len(p) < n {
		if len(p) == cap(p) {
			next := 4 * cap(p)
			if 2*next >= n { // the last step takes all: no short step past a power of 4
				next = n
			}
			if !asked && r.grant != nil && next < n {
				asked = true
				if r.grant(h) {
					next = n
				}
			}
			var q []byte
			var qp *[]byte
			if next < n && poolIndex(next) >= 0 {
				qp = getReadBuf(next)
				q = append((*qp)[:0], p...)
			} else {
				q = unzeroed(p, min(n, next))
			}
			if pooled != nil {
				putReadBuf(pooled, p[:cap(p)])
			}
			p, pooled = q, qp
		}
		m := min(cap(p), n) // append may round cap past n
		err := r.readFull(p[len(p):m])
		if err != nil {
			if pooled != nil {
				putReadBuf(pooled, p[:cap(p)])
			}
			return nil, unexpectedEOF(err)
		}
		p = p[:m]
	}
	if n <= 4*r.size {
		r.big = p // reused for the next large frame; a huge one is not pinned
	}
	return p, nil
}

// unzeroed returns a buffer of capacity size (> len(p)) that starts with
// a copy of p, allocated without zeroing what follows: the rest is about
// to be overwritten by the payload's bytes (or dropped with an error),
// and zeroing a large buffer costs about as much as reading it from a
// loopback socket. strings.Builder.Grow is the standard library's one
// exported allocation that skips the zeroing; its String, over the bytes
// written so far, shares the builder's array, which is the builder's to
// hand over since the builder is dropped here.
func unzeroed(p []byte, size int) []byte {
	if len(p) == 0 {
		return make([]byte, 0, size)
	}
	var sb strings.Builder
	sb.Grow(size)
	sb.Write(p)
	s := sb.String()
	return unsafe.Slice(unsafe.StringData(s), sb.Cap())[:len(p):size]
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Reset makes r read from rd, keeping its buffer (for pooled readers).
func (r *Reader) Reset(rd io.Reader) {
	r.rd = rd
	r.r, r.w, r.pending, r.err, r.lastBig = 0, 0, 0, nil, false
}

// Full-size read buffers are shared through pools, one per power of two
// from 1 KiB to 1 MiB: a quiet connection gives its buffer back for a busy
// one to use. Larger buffers are not pooled.
var readBufs [maxPooledShift - minPooledShift + 1]sync.Pool // of *[]byte

const (
	minPooledShift = 10
	maxPooledShift = 20
)

// poolIndex is the pool of buffers of exactly size bytes, or -1.
func poolIndex(size int) int {
	if size <= 0 || size&(size-1) != 0 {
		return -1
	}
	s := bits.Len(uint(size)) - 1
	if s < minPooledShift || s > maxPooledShift {
		return -1
	}
	return s - minPooledShift
}

// getReadBuf returns a buffer of size bytes, through its pool entry
// (kept with the buffer so that giving it back allocates nothing).
func getReadBuf(size int) *[]byte {
	if i := poolIndex(size); i >= 0 {
		if p, _ := readBufs[i].Get().(*[]byte); p != nil {
			return p
		}
	}
	b := make([]byte, size)
	return &b
}

// putReadBuf gives b (of entry p) back; no one may use it afterwards.
func putReadBuf(p *[]byte, b []byte) {
	if i := poolIndex(len(b)); i >= 0 && p != nil {
		*p = b
		readBufs[i].Put(p)
	}
}
