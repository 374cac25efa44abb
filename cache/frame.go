package cache

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// An entry as Disk and Redis store it:
//
//	offset size
//	0      1    version (frameVersion)
//	1      8    length of the value, big-endian
//	9      4    CRC-32C (Castagnoli) over key, length and value, big-endian
//	13     n    value
//
// The checksum covers the key so that a value stored under the wrong key is
// caught as well as a flipped bit or a truncated write.
const (
	frameVersion    = 1
	frameHeaderSize = 13
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func frameChecksum(k *Key, lenField []byte, v []byte) uint32 {
	c := crc32.Update(0, castagnoli, k[:])
	c = crc32.Update(c, castagnoli, lenField)
	return crc32.Update(c, castagnoli, v)
}

// encodeEntry returns the framed form of v stored under k.
func encodeEntry(k *Key, v []byte) []byte {
	b := make([]byte, frameHeaderSize+len(v))
	b[0] = frameVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(len(v)))
	copy(b[frameHeaderSize:], v)
	binary.BigEndian.PutUint32(b[9:13], frameChecksum(k, b[1:9], b[frameHeaderSize:]))
	return b
}

// decodeEntry checks the framed entry b stored under *k and returns its
// value, a sub-slice of b. Any error wraps ErrCorrupt. (k is a pointer
// because the checksum makes the key escape: the caller's key is usually on
// the heap already, and this way no copy of it is.)
func decodeEntry(k *Key, b []byte) ([]byte, error) {
	if len(b) < frameHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(b), frameHeaderSize)
	}
	if b[0] != frameVersion {
		return nil, fmt.Errorf("%w: version %d at byte 0, want %d", ErrCorrupt, b[0], frameVersion)
	}
	n := binary.BigEndian.Uint64(b[1:9])
	if n != uint64(len(b)-frameHeaderSize) {
		return nil, fmt.Errorf("%w: length field %d at byte 1, but %d value bytes follow the header", ErrCorrupt, n, len(b)-frameHeaderSize)
	}
	v := b[frameHeaderSize:]
	want := binary.BigEndian.Uint32(b[9:13])
	if got := frameChecksum(k, b[1:9], v); got != want {
		return nil, fmt.Errorf("%w: checksum %08x at byte 9, computed %08x", ErrCorrupt, want, got)
	}
	return v, nil
}
