package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// Node metadata is what memberlist gossips about each node besides its
// name and gossip address: the node's RPC addresses, its tags, its load
// and whether it is leaving. memberlist bounds it to MetaMaxSize bytes, so
// it is encoded compactly:
//
//	version  1 byte (metaVersion)
//	flags    1 byte (bit 0: leaving)
//	load     8 bytes, IEEE 754 float64, big endian
//	naddrs   uvarint, then per address: uvarint length, bytes
//	ntags    uvarint, then per tag: uvarint key length, key, uvarint value length, value
//
// Tags are written in ascending key order and the decoder requires it, so
// an encoding is canonical and duplicate keys cannot be expressed.
const (
	metaVersion  = 1
	metaMaxSize  = memberlist.MetaMaxSize
	metaMaxAddrs = 16
	metaMaxTags  = 64

	flagLeaving = 1 << 0
)

// ErrMetaTooLarge is returned when a node's RPC addresses and tags do not
// fit in memberlist's metadata limit.
var ErrMetaTooLarge = errors.New("cluster: node metadata too large")

// meta is the decoded metadata of one node.
type meta struct {
	rpcAddrs []string
	tags     map[string]string
	load     float64
	leaving  bool
}

// encodeMeta returns m's encoding, or an error naming the limit it breaks.
func encodeMeta(m meta) ([]byte, error) {
	if len(m.rpcAddrs) > metaMaxAddrs {
		return nil, fmt.Errorf("%w: %d RPC addresses, limit %d", ErrMetaTooLarge, len(m.rpcAddrs), metaMaxAddrs)
	}
	if len(m.tags) > metaMaxTags {
		return nil, fmt.Errorf("%w: %d tags, limit %d", ErrMetaTooLarge, len(m.tags), metaMaxTags)
	}
	b := make([]byte, 0, 64)
	b = append(b, metaVersion, 0)
	if m.leaving {
		b[1] |= flagLeaving
	}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.load))
	b = binary.AppendUvarint(b, uint64(len(m.rpcAddrs)))
	for _, a := range m.rpcAddrs {
		b = appendString(b, a)
	}
	keys := make([]string, 0, len(m.tags))
	for k := range m.tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m.tags[k])
	}
	if len(b) > metaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes encoded (RPC addresses and tags), memberlist's limit is %d", ErrMetaTooLarge, len(b), metaMaxSize)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// metaError is a decoding error at a byte offset of a metadata blob.
type metaError struct {
	off int
	msg string
}

func (e *metaError) Error() string {
	return fmt.Sprintf("cluster: node metadata at byte %d: %s", e.off, e.msg)
}

// decodeMeta decodes a peer's metadata. It never trusts a length or a
// count: each is checked against its limit and against the bytes left
// before anything is allocated.
func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) > metaMaxSize {
		return m, &metaError{0, fmt.Sprintf("%d bytes, limit %d", len(b), metaMaxSize)}
	}
	d := metaDecoder{b: b}
	if len(b) < 10 {
		return m, &metaError{len(b), fmt.Sprintf("truncated header: %d bytes, need 10", len(b))}
	}
	if b[0] != metaVersion {
		return m, &metaError{0, fmt.Sprintf("unsupported version %d (want %d)", b[0], metaVersion)}
	}
	if b[1]&^flagLeaving != 0 {
		return m, &metaError{1, fmt.Sprintf("unknown flags %#x", b[1]&^flagLeaving)}
	}
	m.leaving = b[1]&flagLeaving != 0
	m.load = math.Float64frombits(binary.BigEndian.Uint64(b[2:10]))
	if math.IsNaN(m.load) || math.IsInf(m.load, 0) {
		return m, &metaError{2, fmt.Sprintf("load %v is not a finite number", m.load)}
	}
	d.off = 10

	// Each address takes at least 2 bytes (length and one byte), each tag
	// at least 3 (two lengths and a one-byte key).
	n, err := d.count("RPC addresses", metaMaxAddrs, 2)
	if err != nil {
		return m, err
	}
	m.rpcAddrs = make([]string, 0, n)
	for i := range n {
		s, err := d.str(fmt.Sprintf("RPC address %d", i+1))
		if err != nil {
			return m, err
		}
		if s == "" {
			return m, &metaError{d.off - 1, fmt.Sprintf("RPC address %d is empty", i+1)}
		}
		m.rpcAddrs = append(m.rpcAddrs, s)
	}
	n, err = d.count("tags", metaMaxTags, 3)
	if err != nil {
		return m, err
	}
	m.tags = make(map[string]string, n)
	prev := ""
	for i := range n {
		at := d.off
		k, err := d.str(fmt.Sprintf("tag %d key", i+1))
		if err != nil {
			return m, err
		}
		if i > 0 && k <= prev {
			return m, &metaError{at, fmt.Sprintf("tag %d key %q not after %q (keys must be unique and ascending)", i+1, k, prev)}
		}
		if err := checkTagKey(k); err != nil {
			return m, &metaError{at, fmt.Sprintf("tag %d: %v", i+1, err)}
		}
		at = d.off
		v, err := d.str(fmt.Sprintf("tag %q value", k))
		if err != nil {
			return m, err
		}
		if err := checkTagValue(v); err != nil {
			return m, &metaError{at, fmt.Sprintf("tag %q: %v", k, err)}
		}
		m.tags[k] = v
		prev = k
	}
	if d.off != len(b) {
		return m, &metaError{d.off, fmt.Sprintf("%d trailing bytes", len(b)-d.off)}
	}
	return m, nil
}

type metaDecoder struct {
	b   []byte
	off int
}

func (d *metaDecoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		return 0, &metaError{d.off, fmt.Sprintf("%s: bad or truncated length", what)}
	}
	if n > 1 && d.b[d.off+n-1] == 0 { // a zero last byte adds nothing: one value, one encoding
		return 0, &metaError{d.off, fmt.Sprintf("%s: length not in its shortest encoding", what)}
	}
	d.off += n
	return v, nil
}

// count reads a count of items (what, in the plural) of at least minSize
// bytes each.
func (d *metaDecoder) count(what string, limit, minSize int) (int, error) {
	at := d.off
	v, err := d.uvarint("count of " + what)
	if err != nil {
		return 0, err
	}
	if v > uint64(limit) {
		return 0, &metaError{at, fmt.Sprintf("%d %s, limit %d", v, what, limit)}
	}
	if left := len(d.b) - d.off; v*uint64(minSize) > uint64(left) {
		return 0, &metaError{at, fmt.Sprintf("%d %s cannot fit in the %d bytes left", v, what, left)}
	}
	return int(v), nil
}

func (d *metaDecoder) str(what string) (string, error) {
	at := d.off
	v, err := d.uvarint(what)
	if err != nil {
		return "", err
	}
	if left := len(d.b) - d.off; v > uint64(left) {
		return "", &metaError{at, fmt.Sprintf("%s length %d exceeds the %d bytes left", what, v, left)}
	}
	s := string(d.b[d.off : d.off+int(v)])
	if !utf8.ValidString(s) {
		return "", &metaError{d.off, what + " is not valid UTF-8"}
	}
	d.off += int(v)
	return s, nil
}
