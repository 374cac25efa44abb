package wire

import (
	"bufio"
	"io"
)

// Reader reads frames from a byte stream. The payload it returns aliases its
// internal buffer and is valid only until the next call to Next.
//
// A frame's length is trusted only as far as the limit: a payload larger
// than the read buffer is read into a buffer that grows with what has
// arrived, so a header that announces a large frame costs memory in
// proportion to the bytes the peer actually sends.
type Reader struct {
	br      *bufio.Reader
	limit   uint32
	pending int    // bytes of the previous frame still to discard from br
	big     []byte // payloads larger than br's buffer
	lastBig bool   // the last payload Next returned is in big's array (see Take)
}

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
	return &Reader{br: bufio.NewReaderSize(r, bufSize), limit: limit}
}

// SetLimit changes the payload limit (after a HELLO exchange).
func (r *Reader) SetLimit(limit uint32) { r.limit = limit }

// Peek returns up to n of the next bytes without consuming them (fewer
// at the end of the input), waiting for them like Next.
func (r *Reader) Peek(n int) []byte {
	if r.pending > 0 {
		if _, err := r.br.Discard(r.pending); err != nil {
			return nil
		}
		r.pending = 0
	}
	b, _ := r.br.Peek(n)
	return b
}

// Buffered reports how many bytes are already read but not yet returned.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.pending }

// Ready reports whether Next would return without waiting for input: a
// whole frame (or a malformed header, which Next reports) is buffered.
func (r *Reader) Ready() bool {
	if r.br.Buffered()-r.pending < HeaderSize {
		return false
	}
	hb, _ := r.br.Peek(r.pending + HeaderSize) // buffered: does not wait
	h, err := ParseHeader(hb[r.pending:], r.limit)
	return err != nil || r.br.Buffered()-r.pending-HeaderSize >= int(h.Length)
}

// Next reads one frame. A frame over the limit is reported before its
// payload is read or any buffer for it is allocated.
func (r *Reader) Next() (Header, []byte, error) {
	r.lastBig = false
	if r.pending > 0 {
		if _, err := r.br.Discard(r.pending); err != nil {
			return Header{}, nil, err
		}
		r.pending = 0
	}
	hb, err := r.br.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(hb) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Header{}, nil, err
	}
	h, err := ParseHeader(hb, r.limit)
	if err != nil {
		return h, nil, err
	}
	r.br.Discard(HeaderSize)
	n := int(h.Length)
	if n == 0 {
		return h, nil, nil
	}
	if n <= r.br.Size() {
		p, err := r.br.Peek(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, nil, err
		}
		r.pending = n
		return h, p, nil
	}
	p, err := r.readBig(n)
	if err != nil {
		return h, nil, err
	}
	r.lastBig = true
	return h, p, nil
}

// readBig reads a payload of n bytes, more than the read buffer holds.
// n was checked against the limit, but the peer may still stop sending
// early: the buffer starts at twice the read buffer and grows only as it
// fills, four times at a step, or to n at once when that is at most twice
// the step, so what is allocated is at most about eight times what arrived
// (and a 1 MiB frame costs three allocations, 64 KiB + 256 KiB + 1 MiB,
// not a doubling ladder).
func (r *Reader) readBig(n int) ([]byte, error) {
	if cap(r.big) >= n {
		p := r.big[:n]
		if _, err := io.ReadFull(r.br, p); err != nil {
			return nil, unexpectedEOF(err)
		}
		return p, nil
	}
	p := make([]byte, 0, min(n, 2*r.br.Size()))
	for len(p) < n {
		if len(p) == cap(p) {
			next := 4 * cap(p)
			if 2*next >= n { // the last step takes all: no short step past a power of 4
				next = n
			}
			q := make([]byte, len(p), min(n, next))
			copy(q, p)
			p = q
		}
		m, err := io.ReadFull(r.br, p[len(p):min(cap(p), n)]) // append may round cap past n
		p = p[:len(p)+m]
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	if n <= 4*r.br.Size() {
		r.big = p // reused for the next large frame; a huge one is not pinned
	}
	return p, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Reset makes r read from rd, keeping its buffer (for pooled readers).
func (r *Reader) Reset(rd io.Reader) {
	r.br.Reset(rd)
	r.pending = 0
}
