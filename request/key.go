package request

import (
	"crypto/sha256"
	"encoding/binary"
)

// Key is a content key: the SHA-256 Merkle hash of a request tree (see
// Node.Key). It is the same type as cache.Key.
type Key = [32]byte

// Tags of the content-key encoding. Changing any of them, or the layout,
// changes every key: bump keyVersion with it.
const (
	keyVersion = 1
	tagNode    = 'N'
	tagValue   = 'V'
	tagRequest = 'R'
)

// largeKeyInput is the size of a node's own key input past which it is
// streamed into the hash instead of assembled in a buffer.
const largeKeyInput = 64 << 10

// Key returns the tree's content key: SHA-256 over a version byte, the
// function id and the arguments, each length-prefixed and type-tagged, a
// subrequest contributing its own key:
//
//	key(n) = SHA-256( 1 'N' uvarint(len id) id uvarint(len args)
//	                  { 'V' uvarint(len v) v | 'R' key(sub) } )
//
// Values are hashed in their canonical msgpack encoding, so the key is the
// same on every machine, and ("ab","c") and ("a","bc") differ. The title
// and retry hint are not part of it. The tree must be valid (Validate):
// Key does not check limits.
func (n *Node) Key() Key {
	var buf [1024]byte
	return n.key(buf[:0])
}

// key assembles n's key input in scratch's spare capacity (children use
// what lies beyond their parent's input) and hashes it.
func (n *Node) key(scratch []byte) Key {
	size := 2 + 2*binary.MaxVarintLen64 + len(n.ID)
	for _, a := range n.Args {
		size += 1 + binary.MaxVarintLen64 + len(a.Value)
	}
	if size > largeKeyInput {
		return n.keyStream()
	}
	b := append(scratch[:0], keyVersion, tagNode)
	b = binary.AppendUvarint(b, uint64(len(n.ID)))
	b = append(b, n.ID...)
	b = binary.AppendUvarint(b, uint64(len(n.Args)))
	for _, a := range n.Args {
		if a.Node != nil {
			k := a.Node.key(b[len(b):])
			b = append(b, tagRequest)
			b = append(b, k[:]...)
			continue
		}
		b = append(b, tagValue)
		b = binary.AppendUvarint(b, uint64(len(a.Value)))
		b = append(b, a.Value...)
	}
	return sha256.Sum256(b)
}

// keyStream is key for nodes with large values: it writes the input to
// the hash piece by piece.
func (n *Node) keyStream() Key {
	h := sha256.New()
	var small [2 + 2*binary.MaxVarintLen64]byte
	b := append(small[:0], keyVersion, tagNode)
	b = binary.AppendUvarint(b, uint64(len(n.ID)))
	h.Write(b)
	h.Write([]byte(n.ID))
	h.Write(binary.AppendUvarint(small[:0], uint64(len(n.Args))))
	for _, a := range n.Args {
		if a.Node != nil {
			k := a.Node.Key()
			h.Write([]byte{tagRequest})
			h.Write(k[:])
			continue
		}
		b = append(small[:0], tagValue)
		h.Write(binary.AppendUvarint(b, uint64(len(a.Value))))
		h.Write(a.Value)
	}
	var k Key
	h.Sum(k[:0])
	return k
}

// ValueKey returns the key of a call of function id with argument values
// given as canonical msgpack: the key of the request New(id, values...)
// would build. Value-based caching levels key on it after the subrequests
// resolve.
func ValueKey(id string, values [][]byte) Key {
	var buf [16]Arg
	args := buf[:0]
	for _, v := range values {
		args = append(args, Arg{Value: v})
	}
	n := Node{ID: id, Args: args}
	return n.Key()
}
