package wire

import (
	"bytes"
	"sync/atomic"
	"unsafe"
)

// Small metadata — a trace context, a token: one or two pairs of a few
// dozen bytes, which traced calls carry on every call — is parsed into a
// single allocation holding the pairs and a copy of their encoding, the
// strings pointing into that copy, instead of one allocation for the
// slice and one per string. Nothing writes the copy after parsing, so
// the strings are as immutable as any; the block lives as long as one of
// them does.
const (
	smallMDPairs = 2
	smallMDBytes = 96 // a traceparent pair encodes in 69
)

type mdBlock struct {
	pairs [smallMDPairs]MD
	n     uint8 // pairs used
	size  uint8 // bytes of the encoding in buf
	buf   [smallMDBytes]byte
}

// md is the parsed pairs; appending to it copies them.
func (blk *mdBlock) md() []MD { return blk.pairs[:blk.n:blk.n] }

// raw is the encoding the pairs were parsed from.
func (blk *mdBlock) raw() []byte { return blk.buf[:blk.size] }

// parseSmallMetadata parses the metadata b (its count, n, already read by
// d) when it fits a block; ok is false (and d untouched) when it does
// not.
func parseSmallMetadata(d *decoder, b []byte, n uint64) (blk *mdBlock, ok bool, err error) {
	if n == 0 || n > smallMDPairs || len(b) > smallMDBytes {
		return nil, false, nil
	}
	blk = new(mdBlock)
	blk.size = uint8(copy(blk.buf[:], b))
	// The strings are the copy's bytes at the offsets d reads them from b.
	str := func(v []byte) string {
		if len(v) == 0 {
			return ""
		}
		off := int(uintptr(unsafe.Pointer(unsafe.SliceData(v))) - uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		return unsafe.String(&blk.buf[off], len(v))
	}
	for i := uint64(0); i < n; i++ {
		k, err := d.bytes("metadata key", MaxMetadata)
		if err != nil {
			return nil, true, err
		}
		v, err := d.bytes("metadata value", MaxMetadata)
		if err != nil {
			return nil, true, err
		}
		blk.pairs[i] = MD{Key: str(k), Value: str(v)}
	}
	blk.n = uint8(n)
	return blk, true, nil
}

// MetadataCache parses the metadata of a connection's calls, keeping the
// last small one parsed: calls that carry the same metadata as the call
// before (a load under one trace context, one token) share its parse and
// cost no allocation. The slices it returns are shared, so they must not
// be modified. It is safe for concurrent use; the zero value is ready.
type MetadataCache struct {
	last atomic.Pointer[mdBlock]
}

// Parse is ParseMetadata(nil, b), through the cache.
func (c *MetadataCache) Parse(b []byte) ([]MD, error) {
	if blk := c.last.Load(); blk != nil && bytes.Equal(blk.raw(), b) {
		return blk.md(), nil
	}
	md, blk, err := parseFresh(b)
	if blk != nil {
		c.last.Store(blk)
	}
	return md, err
}
