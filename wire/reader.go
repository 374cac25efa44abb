package wire

import (
	"bufio"
	"io"
)

// Reader reads frames from a byte stream. The payload it returns aliases its
// internal buffer and is valid only until the next call to Next.
type Reader struct {
	br      *bufio.Reader
	limit   uint32
	pending int    // bytes of the previous frame still to discard from br
	big     []byte // payloads larger than br's buffer
}

// NewReader returns a Reader over r with a read buffer of bufSize bytes that
// refuses frames whose payload is larger than limit.
func NewReader(r io.Reader, bufSize int, limit uint32) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), limit: limit}
}

// SetLimit changes the payload limit (after a HELLO exchange).
func (r *Reader) SetLimit(limit uint32) { r.limit = limit }

// Buffered reports how many bytes are already read but not yet returned.
func (r *Reader) Buffered() int { return r.br.Buffered() - r.pending }

// Next reads one frame. A frame over the limit is reported before its
// payload is read or any buffer for it is allocated.
func (r *Reader) Next() (Header, []byte, error) {
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
	// n was checked against the limit above, so this allocation is bounded.
	if cap(r.big) < n {
		r.big = make([]byte, n)
	}
	p := r.big[:n]
	if _, err := io.ReadFull(r.br, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	if n > 4*r.br.Size() {
		r.big = nil // don't pin a huge buffer for the connection's life
	}
	return h, p, nil
}

// Reset makes r read from rd, keeping its buffer (for pooled readers).
func (r *Reader) Reset(rd io.Reader) {
	r.br.Reset(rd)
	r.pending = 0
}
