package wire

import "unsafe"

// Small metadata — a trace context, a token: one or two pairs of a few
// dozen bytes, which traced calls carry on every call — is parsed into a
// single allocation holding both the pairs and their bytes, instead of
// one for the slice and one per string. The strings point into the
// block's buffer, which nothing writes after parsing, so they are as
// immutable as any string; the block lives as long as one of them does.
const (
	smallMDPairs = 2
	smallMDBytes = 96 // a traceparent pair is 66: block 160 bytes in all
)

type mdBlock struct {
	pairs [smallMDPairs]MD
	buf   [smallMDBytes]byte
}

// parseSmallMetadata parses n pairs from d when they fit a block; ok is
// false (and d untouched) when they do not.
func parseSmallMetadata(d *decoder, n uint64) (md []MD, ok bool, err error) {
	if n == 0 || n > smallMDPairs || len(d.p)-d.off > smallMDBytes {
		return nil, false, nil
	}
	blk := new(mdBlock)
	buf := blk.buf[:0:smallMDBytes]
	md = blk.pairs[:0:n]
	str := func(b []byte) string {
		if len(b) == 0 {
			return ""
		}
		start := len(buf)
		buf = append(buf, b...) // within capacity: the pairs' bytes are fewer than the frame's
		return unsafe.String(&buf[start], len(b))
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
		md = append(md, MD{Key: str(k), Value: str(v)})
	}
	return md, true, nil
}
