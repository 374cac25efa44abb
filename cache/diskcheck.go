package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// This file holds checkBoltFile, a check of a bbolt file's structure that
// reads the file with ReadAt and never through bbolt. It runs before bbolt
// opens the file for writing, because bbolt trusts its file: opening a
// damaged one walks the page tree in a goroutine of bbolt's own, where a
// failed assertion panics and a wild page id faults beyond the mapping —
// either kills the process, and no recover can reach it.
//
// The check is at least as strict as that walk (bbolt's freepages, which
// is tx.Check's bucket walk): meta pages and their checksums, every page's
// self-identification and type, page ids below the high-water mark and
// inside the file, each page referenced once, element bounds, key order,
// inline and nested buckets, and a persisted freelist — and what bbolt's
// writer assumes besides (see tree). It does not read ordinary values;
// Disk checks each entry's CRC when it is read.

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common), in the
// machine's byte order.
const (
	boltPageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	boltElementSize    = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	boltMetaSize       = 64 // magic, version, pageSize, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	boltBucketHeader   = 16 // root u64, sequence u64

	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltMetaPage     = 0x04
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01

	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltNoFreelist = ^uint64(0)
	boltMaxKeySize = 32768

	// checkMaxDepth bounds the page and bucket nesting the check follows.
	// A real cache file is a handful of levels deep.
	checkMaxDepth = 64
)

var ne = binary.NativeEndian

// errDamaged marks a cache file that failed checkBoltFile.
var errDamaged = errors.New("damaged")

// damaged returns an error wrapping errDamaged that names the page.
func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errDamaged, fmt.Sprintf(format, args...))
}

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // pgid: pages in use, the high-water mark
	txid     uint64
	valid    error
}

func parseMeta(b []byte) boltMeta {
	if len(b) < boltPageHeaderSize+boltMetaSize {
		return boltMeta{valid: damaged("meta page cut short at %d bytes", len(b))}
	}
	m := b[boltPageHeaderSize : boltPageHeaderSize+boltMetaSize]
	meta := boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		hwm:      ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}
	h := fnv.New64a()
	h.Write(m[:56])
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		meta.valid = damaged("meta page: magic %#x, want %#x", ne.Uint32(m[0:]), uint32(boltMagic))
	case ne.Uint32(m[4:]) != boltVersion:
		meta.valid = damaged("meta page: version %d, want %d", ne.Uint32(m[4:]), boltVersion)
	case ne.Uint64(m[56:]) != h.Sum64():
		meta.valid = damaged("meta page: checksum %#x, computed %#x", ne.Uint64(m[56:]), h.Sum64())
	}
	return meta
}

// bitset marks page ids below the high-water mark.
type bitset []uint64

func (s bitset) has(i uint64) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s bitset) set(i uint64)      { s[i/64] |= 1 << (i % 64) }

type boltChecker struct {
	f         io.ReaderAt
	size      int64
	pageSize  int
	hwm       uint64
	reachable bitset
	freed     bitset
	bufs      [][]byte // one page buffer per depth
}

// checkBoltFile checks the structure of the bbolt file at path. A missing
// or empty file passes (bbolt creates one). A damaged or unreadable file
// fails with an error wrapping errDamaged that says what is wrong where;
// any other error is one of opening the file.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	if err := checkBolt(f, st.Size()); err != nil {
		if !errors.Is(err, errDamaged) {
			// A file that cannot be read through is as good as damaged.
			err = fmt.Errorf("%w: %w", errDamaged, err)
		}
		return err
	}
	return nil
}

// checkBolt checks the bbolt file of size bytes that r reads.
func checkBolt(r io.ReaderAt, size int64) error {
	c := &boltChecker{f: r, size: size}
	meta, err := c.meta()
	if err != nil {
		return err
	}
	c.hwm = meta.hwm
	c.reachable = make(bitset, (c.hwm+63)/64)
	c.freed = make(bitset, (c.hwm+63)/64)
	c.reachable.set(0)
	c.reachable.set(1)
	if meta.freelist != boltNoFreelist {
		if err := c.freelist(meta.freelist); err != nil {
			return err
		}
	}
	return c.bucket(meta.root, 0)
}

// meta finds the page size and the meta page bbolt will use, the way
// bbolt does, and checks the bounds it sets.
func (c *boltChecker) meta() (boltMeta, error) {
	if c.size < 1024 {
		return boltMeta{}, damaged("file is %d bytes, too short for two meta pages", c.size)
	}
	first := make([]byte, boltPageHeaderSize+boltMetaSize)
	if _, err := c.f.ReadAt(first, 0); err != nil {
		return boltMeta{}, err
	}
	m0 := parseMeta(first)
	pageSize := 0
	if m0.valid == nil {
		pageSize = int(m0.pageSize)
	} else {
		// bbolt looks for the second meta page at each possible page size.
		for i := range 15 {
			pos := int64(1024) << i
			if pos >= c.size-1024 {
				break
			}
			if _, err := c.f.ReadAt(first, pos); err != nil {
				return boltMeta{}, err
			}
			if m := parseMeta(first); m.valid == nil {
				pageSize = int(m.pageSize)
				break
			}
		}
		if pageSize == 0 {
			return boltMeta{}, fmt.Errorf("both meta pages: %w", m0.valid)
		}
	}
	if pageSize < 1024 || pageSize > 1<<24 || pageSize&(pageSize-1) != 0 {
		return boltMeta{}, damaged("meta page: page size %d is not a power of two in [1 KiB, 16 MiB]", pageSize)
	}
	if c.size < 2*int64(pageSize) {
		return boltMeta{}, damaged("file is %d bytes, shorter than two %d-byte meta pages", c.size, pageSize)
	}
	c.pageSize = pageSize
	b0, err := c.read(0, boltPageHeaderSize+boltMetaSize)
	if err != nil {
		return boltMeta{}, err
	}
	m0 = parseMeta(b0)
	b1, err := c.read(int64(pageSize), boltPageHeaderSize+boltMetaSize)
	if err != nil {
		return boltMeta{}, err
	}
	m1 := parseMeta(b1)
	// As bbolt's DB.meta: the later transaction's meta if valid, else the
	// other.
	a, b := m0, m1
	if m1.txid > m0.txid {
		a, b = m1, m0
	}
	meta := a
	if a.valid != nil {
		meta = b
	}
	if meta.valid != nil {
		return boltMeta{}, fmt.Errorf("both meta pages: %w", a.valid)
	}
	switch pages := uint64(c.size / int64(pageSize)); {
	case int(meta.pageSize) != pageSize:
		return boltMeta{}, damaged("meta page (txid %d): page size %d, but the file's is %d", meta.txid, meta.pageSize, pageSize)
	case meta.hwm < 2 || meta.hwm > pages:
		return boltMeta{}, damaged("meta page (txid %d): %d pages in use, but the file holds %d (%d bytes)", meta.txid, meta.hwm, pages, c.size)
	case meta.root < 2 || meta.root >= meta.hwm:
		return boltMeta{}, damaged("meta page (txid %d): root page %d outside [2, %d)", meta.txid, meta.root, meta.hwm)
	case meta.freelist != boltNoFreelist && (meta.freelist < 2 || meta.freelist >= meta.hwm):
		return boltMeta{}, damaged("meta page (txid %d): freelist page %d outside [2, %d)", meta.txid, meta.freelist, meta.hwm)
	}
	return meta, nil
}

// read returns n bytes at off in a new slice; the caller has checked that
// they lie inside the pages in use.
func (c *boltChecker) read(off int64, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := c.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read %d bytes at offset %d: %w", n, off, err)
	}
	return b, nil
}

// boltPage is a page being checked: its header, its first page of bytes,
// and the length of its span (the page and its overflow pages).
type boltPage struct {
	id       uint64
	flags    uint16
	count    int
	overflow uint32
	first    []byte
	span     int64
	c        *boltChecker
}

// page reads page id at depth, checks its header and marks its span
// reachable.
func (c *boltChecker) page(id uint64, depth int) (*boltPage, error) {
	if id < 2 || id >= c.hwm {
		return nil, damaged("page id %d outside [2, %d)", id, c.hwm)
	}
	for len(c.bufs) <= depth {
		c.bufs = append(c.bufs, make([]byte, c.pageSize))
	}
	buf := c.bufs[depth]
	if _, err := c.f.ReadAt(buf, int64(id)*int64(c.pageSize)); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	p := &boltPage{
		id:       ne.Uint64(buf[0:]),
		flags:    ne.Uint16(buf[8:]),
		count:    int(ne.Uint16(buf[10:])),
		overflow: ne.Uint32(buf[12:]),
		first:    buf,
		c:        c,
	}
	if p.id != id {
		return nil, damaged("page %d (offset %d) identifies itself as page %d", id, int64(id)*int64(c.pageSize), p.id)
	}
	if uint64(p.overflow) >= c.hwm-id {
		return nil, damaged("page %d: %d overflow pages run past the %d pages in use", id, p.overflow, c.hwm)
	}
	p.span = (int64(p.overflow) + 1) * int64(c.pageSize)
	for i := id; i <= id+uint64(p.overflow); i++ {
		if c.reachable.has(i) {
			return nil, damaged("page %d is referenced more than once", i)
		}
		c.reachable.set(i)
	}
	return p, nil
}

// bytes returns n bytes at offset off of the page's span.
func (p *boltPage) bytes(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > p.span || n > p.span-off {
		return nil, damaged("page %d: %d bytes at offset %d run past its %d-byte span", p.id, n, off, p.span)
	}
	if off+n <= int64(len(p.first)) {
		return p.first[off : off+n : off+n], nil
	}
	return p.c.read(int64(p.id)*int64(p.c.pageSize)+off, int(n))
}

// freelist checks a persisted freelist page and marks the pages it frees.
func (c *boltChecker) freelist(id uint64) error {
	p, err := c.page(id, 0)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if p.flags != boltFreelistPage {
		return damaged("freelist page %d has type %#x", id, p.flags)
	}
	start, count := int64(boltPageHeaderSize), uint64(p.count)
	if p.count == 0xFFFF {
		b, err := p.bytes(start, 8)
		if err != nil {
			return err
		}
		count = ne.Uint64(b)
		start += 8
	}
	if count > c.hwm {
		return damaged("freelist page %d lists %d pages of %d", id, count, c.hwm)
	}
	b, err := p.bytes(start, int64(count)*8)
	if err != nil {
		return err
	}
	for i := range count {
		fid := ne.Uint64(b[i*8:])
		switch {
		case fid < 2 || fid >= c.hwm:
			return damaged("freelist page %d: free page %d outside [2, %d)", id, fid, c.hwm)
		case c.freed.has(fid):
			return damaged("freelist page %d: page %d freed twice", id, fid)
		}
		c.freed.set(fid)
	}
	return nil
}

// bucket checks the page tree of a bucket whose root is page root.
func (c *boltChecker) bucket(root uint64, depth int) error {
	_, _, err := c.tree(root, nil, nil, nil, depth)
	return err
}

// tree checks the subtree at page id, whose keys must lie in [lo, hi)
// (nil: unbounded), and returns its first and largest keys. It follows
// bbolt's key order check (tx_check.go) exactly, nil bounds included, and
// adds what bbolt's writer assumes but tx.Check does not test: a page
// below a branch is not empty and begins with the branch's key for it
// (first, when not nil), since bbolt finds a child's entry in its parent
// by that key when it writes the child back; and no key is empty.
func (c *boltChecker) tree(id uint64, lo, hi, first []byte, depth int) (firstKey, maxKey []byte, err error) {
	if depth >= checkMaxDepth {
		return nil, nil, damaged("page %d: nested more than %d deep", id, checkMaxDepth)
	}
	p, err := c.page(id, depth)
	if err != nil {
		return nil, nil, err
	}
	for i := id; i <= id+uint64(p.overflow); i++ {
		if c.freed.has(i) {
			return nil, nil, damaged("page %d is in use and on the freelist", i)
		}
	}
	if int64(boltPageHeaderSize)+int64(p.count)*boltElementSize > p.span {
		return nil, nil, damaged("page %d: %d elements overrun its %d-byte span", id, p.count, p.span)
	}
	if first != nil && p.count == 0 {
		return nil, nil, damaged("page %d below a branch is empty", id)
	}
	switch p.flags {
	case boltBranchPage:
		if p.count == 0 {
			return nil, nil, damaged("branch page %d is empty", id)
		}
		keys := make([][]byte, p.count)
		children := make([]uint64, p.count)
		for i := range p.count {
			e, _ := p.bytes(boltPageHeaderSize+int64(i)*boltElementSize, boltElementSize)
			pos, ksize := int64(ne.Uint32(e[0:])), int64(ne.Uint32(e[4:]))
			children[i] = ne.Uint64(e[8:])
			if ksize == 0 || ksize > boltMaxKeySize {
				return nil, nil, damaged("branch page %d, element %d: key of %d bytes", id, i, ksize)
			}
			k, err := p.bytes(boltPageHeaderSize+int64(i)*boltElementSize+pos, ksize)
			if err != nil {
				return nil, nil, fmt.Errorf("branch page %d, element %d: %w", id, i, err)
			}
			keys[i] = bytes.Clone(k) // the buffer is reused below this depth
		}
		if first != nil && !bytes.Equal(keys[0], first) {
			return nil, nil, damaged("page %d begins with key %x, but its parent knows it by %x", id, keys[0], first)
		}
		running := lo
		for i := range p.count {
			if err := checkKeyOrder(id, i, keys[i], running, hi); err != nil {
				return nil, nil, err
			}
			next := hi
			if i < p.count-1 {
				next = keys[i+1]
			}
			if _, maxKey, err = c.tree(children[i], keys[i], next, keys[i], depth+1); err != nil {
				return nil, nil, err
			}
			running = maxKey
		}
		return keys[0], maxKey, nil
	case boltLeafPage:
		running := lo
		for i := range p.count {
			e, _ := p.bytes(boltPageHeaderSize+int64(i)*boltElementSize, boltElementSize)
			flags, pos := ne.Uint32(e[0:]), int64(ne.Uint32(e[4:]))
			ksize, vsize := int64(ne.Uint32(e[8:])), int64(ne.Uint32(e[12:]))
			if ksize == 0 || ksize > boltMaxKeySize {
				return nil, nil, damaged("leaf page %d, element %d: key of %d bytes", id, i, ksize)
			}
			off := boltPageHeaderSize + int64(i)*boltElementSize + pos
			k, err := p.bytes(off, ksize)
			if err != nil {
				return nil, nil, fmt.Errorf("leaf page %d, element %d key: %w", id, i, err)
			}
			if off+ksize+vsize > p.span {
				return nil, nil, damaged("leaf page %d, element %d: %d-byte value runs past the page's %d-byte span", id, i, vsize, p.span)
			}
			if i == 0 {
				if first != nil && !bytes.Equal(k, first) {
					return nil, nil, damaged("page %d begins with key %x, but its parent knows it by %x", id, k, first)
				}
				firstKey = bytes.Clone(k)
			}
			if err := checkKeyOrder(id, i, k, running, hi); err != nil {
				return nil, nil, err
			}
			maxKey = bytes.Clone(k)
			running = maxKey
			if flags&boltBucketLeaf != 0 {
				v, err := p.bytes(off+ksize, min(vsize, int64(c.pageSize)+boltBucketHeader))
				if err != nil {
					return nil, nil, err
				}
				if err := c.bucketValue(id, i, v, vsize, depth); err != nil {
					return nil, nil, err
				}
			}
		}
		return firstKey, maxKey, nil
	default:
		return nil, nil, damaged("page %d has type %#x, want a branch or leaf page", id, p.flags)
	}
}

// bucketValue checks the value of a bucket entry: a bucket header and,
// for an inline bucket, the leaf page that follows it.
func (c *boltChecker) bucketValue(id uint64, i int, v []byte, vsize int64, depth int) error {
	if vsize < boltBucketHeader {
		return damaged("leaf page %d, element %d: bucket value of %d bytes", id, i, vsize)
	}
	root := ne.Uint64(v[0:])
	if root != 0 {
		return c.bucket(root, depth+1)
	}
	// An inline bucket: a leaf page inside the value, never more than a
	// quarter page, and never holding buckets itself.
	if vsize != int64(len(v)) {
		return damaged("leaf page %d, element %d: inline bucket of %d bytes, over a page", id, i, vsize)
	}
	in := v[boltBucketHeader:]
	if len(in) < boltPageHeaderSize {
		return damaged("leaf page %d, element %d: inline bucket of %d bytes has no page header", id, i, vsize)
	}
	flags, count := ne.Uint16(in[8:]), int(ne.Uint16(in[10:]))
	if flags != boltLeafPage {
		return damaged("leaf page %d, element %d: inline bucket page has type %#x", id, i, flags)
	}
	if boltPageHeaderSize+count*boltElementSize > len(in) {
		return damaged("leaf page %d, element %d: inline bucket's %d elements overrun its %d bytes", id, i, count, len(in))
	}
	var prev []byte
	for j := range count {
		e := in[boltPageHeaderSize+j*boltElementSize:]
		eflags, pos := ne.Uint32(e[0:]), uint64(ne.Uint32(e[4:]))
		ksize, vsize := uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		off := uint64(boltPageHeaderSize+j*boltElementSize) + pos
		if off+ksize+vsize > uint64(len(in)) {
			return damaged("leaf page %d, element %d: inline bucket element %d overruns its %d bytes", id, i, j, len(in))
		}
		if eflags&boltBucketLeaf != 0 {
			return damaged("leaf page %d, element %d: inline bucket holds a bucket", id, i)
		}
		k := in[off : off+ksize]
		if ksize == 0 {
			return damaged("leaf page %d, element %d: inline bucket element %d has an empty key", id, i, j)
		}
		if j > 0 && bytes.Compare(prev, k) >= 0 {
			return damaged("leaf page %d, element %d: inline bucket keys out of order at %d", id, i, j)
		}
		prev = k
	}
	return nil
}

// checkKeyOrder is bbolt's verifyKeyOrder: element i's key must not sort
// before prev (the previous key, or the parent's bound for the first) and,
// past the first, must sort after it; it must sort before hi.
func checkKeyOrder(id uint64, i int, key, prev, hi []byte) error {
	if i == 0 && prev != nil && bytes.Compare(prev, key) > 0 {
		return damaged("page %d: first key %x sorts before its parent's %x", id, key, prev)
	}
	if i > 0 && bytes.Compare(prev, key) >= 0 {
		return damaged("page %d: key %d (%x) does not sort after %x", id, i, key, prev)
	}
	if hi != nil && bytes.Compare(key, hi) >= 0 {
		return damaged("page %d: key %d (%x) does not sort before the next branch key %x", id, i, key, hi)
	}
	return nil
}
