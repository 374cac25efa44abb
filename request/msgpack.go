package request

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// The msgpack form of a tree, used on the wire:
//
//	node = [id str, title str, args array]            (3 elements)
//	     | [id, title, args, base_millis, max_attempts] (5, with a retry hint)
//	arg  = [0, value]    a value, in canonical msgpack
//	     | [1, node]     a subrequest
const (
	argValue   = 0
	argRequest = 1
)

// AppendMsgpack appends the msgpack form of the tree. Values are copied as
// they are (canonical when built by this package). It fails only on a tree
// that New could not build, or one nested deeper than 4096 (a cycle).
func AppendMsgpack(b []byte, n *Node) ([]byte, error) { return appendNodeMsgpack(b, n, 0) }

func appendNodeMsgpack(b []byte, n *Node, depth int) ([]byte, error) {
	if n == nil {
		return b, status.New(status.InvalidArgument, "request is nil")
	}
	if depth > maxWriteDepth {
		return b, status.Errorf(status.InvalidArgument, "request nested deeper than %d (a cycle?)", maxWriteDepth)
	}
	if n.err != nil {
		return b, n.err
	}
	if n.Retry != (RetryHint{}) {
		b = value.AppendArrayHeader(b, 5)
	} else {
		b = value.AppendArrayHeader(b, 3)
	}
	b = value.AppendString(b, n.ID)
	b = value.AppendString(b, n.Title)
	b = value.AppendArrayHeader(b, len(n.Args))
	for _, a := range n.Args {
		b = append(b, 0x92) // fixarray of 2
		if a.Node != nil {
			b = append(b, argRequest)
			var err error
			if b, err = appendNodeMsgpack(b, a.Node, depth+1); err != nil {
				return b, err
			}
			continue
		}
		b = append(b, argValue)
		if a.Value == nil {
			return b, status.Errorf(status.InvalidArgument, "%s: an argument has neither a value nor a subrequest", n.ID)
		}
		b = append(b, a.Value...)
	}
	if n.Retry != (RetryHint{}) {
		b = value.AppendInt(b, n.Retry.BaseMillis)
		b = value.AppendInt(b, n.Retry.MaxAttempts)
	}
	return b, nil
}

// ParseMsgpack reads a tree in msgpack form from the start of b and returns
// it with the number of bytes it took. Values that are already canonical
// alias b (others are re-encoded), so b must stay unchanged while the tree
// is in use. Errors are InvalidArgument naming the path and byte offset,
// or ResourceExhausted for a tree over lim.MaxBytes; zero fields of lim
// take DefaultLimits.
//
// What it allocates is bounded by what b holds: an argument count is
// checked against the bytes left less those that the arguments still due
// in enclosing requests need, so nested requests cannot each claim the
// whole input.
func ParseMsgpack(b []byte, lim Limits) (*Node, int, error) {
	lim = lim.orDefault()
	p := msgpackParser{b: b, lim: lim, budget: newBudget(lim.MaxBytes)}
	n, err := p.node(1)
	if err != nil {
		return nil, 0, err.status()
	}
	return n, p.off, nil
}

type msgpackParser struct {
	b      []byte
	off    int
	lim    Limits
	nodes  int
	budget budget
	// reserved is the input the arguments announced but not yet read
	// need at least (minArgBytes each), beyond the request being read.
	reserved int
	canon    canonWriter
	arena    arena
}

// mpErr is an error on its way out of ParseMsgpack: the path of argument
// indexes is collected innermost first as each level returns it, so that
// nothing is spent on paths while all is well.
type mpErr struct {
	off  int
	msg  string
	code status.Code
	path []int
}

func (p *msgpackParser) errorf(off int, format string, args ...any) *mpErr {
	return &mpErr{off: off, msg: fmt.Sprintf(format, args...), code: status.InvalidArgument}
}

func (p *msgpackParser) overBudget(off int) *mpErr {
	return &mpErr{off: off, code: status.ResourceExhausted,
		msg: fmt.Sprintf("the decoded request tree would take more than %d bytes (Limits.MaxBytes)", p.budget.max)}
}

// valueErr is an error in the argument value at p.off: scanCanon and
// canonWriter name the offset in p.b where it goes wrong, so that one is
// kept rather than added to.
func (p *msgpackParser) valueErr(err error) *mpErr {
	var ve *value.Error
	if errors.As(err, &ve) {
		return p.errorf(ve.Offset, "%s", ve.Msg)
	}
	return p.errorf(p.off, "%v", err)
}

// prefix names the field the error is in.
func (e *mpErr) prefix(what string) *mpErr {
	e.msg = what + ": " + e.msg
	return e
}

// in adds the index of the argument the error is in.
func (e *mpErr) in(i int) *mpErr {
	e.path = append(e.path, i)
	return e
}

func (e *mpErr) status() error {
	idx := slices.Clone(e.path)
	slices.Reverse(idx)
	s := status.Errorf(e.code, "request msgpack: %s: %s (at byte %d)", errPath(idx), e.msg, e.off)
	s.Category = status.ErrSerialization
	return s
}

// head reads a header of the wanted kind.
func (p *msgpackParser) head(want value.Kind, what string) (head, *mpErr) {
	h, err := readHead(p.b, p.off)
	if err != nil {
		return h, p.valueErr(err).prefix(what)
	}
	if h.kind != want && !(want == value.KindUint && h.kind == value.KindInt) {
		return h, p.errorf(p.off, "%s: want %s, got %s", what, want, h.kind)
	}
	return h, nil
}

func (p *msgpackParser) str(what string) ([]byte, *mpErr) {
	h, err := p.head(value.KindString, what)
	if err != nil {
		return nil, err
	}
	if h.n > p.lim.Value.MaxLength {
		return nil, p.errorf(p.off, "%s of %d bytes exceeds the limit %d", what, h.n, p.lim.Value.MaxLength)
	}
	if left := len(p.b) - p.off - h.hlen; h.n > left {
		return nil, p.errorf(p.off, "%s of %d bytes does not fit in the %d bytes left", what, h.n, left)
	}
	p.off += h.hlen
	s := p.b[p.off : p.off+h.n]
	p.off += h.n
	return s, nil
}

// count reads an array header of at most max elements, each needing at
// least per bytes of what is left once the bytes reserved for arguments
// still due are set aside.
func (p *msgpackParser) count(what string, limit, per int) (int, *mpErr) {
	h, err := p.head(value.KindArray, what)
	if err != nil {
		return 0, err
	}
	if h.n > limit {
		return 0, p.errorf(p.off, "%s: %d elements exceed the limit %d", what, h.n, limit)
	}
	if left := len(p.b) - p.off - h.hlen - p.reserved; h.n > left/per {
		if p.reserved > 0 {
			return 0, p.errorf(p.off, "%s: %d elements of at least %d bytes do not fit in the %d bytes left (%d more are due to arguments of enclosing requests)", what, h.n, per, max(left, 0), p.reserved)
		}
		return 0, p.errorf(p.off, "%s: %d elements of at least %d bytes do not fit in the %d bytes left", what, h.n, per, max(left, 0))
	}
	p.off += h.hlen
	return h.n, nil
}

func (p *msgpackParser) integer(what string) (int64, *mpErr) {
	start := p.off
	h, err := p.head(value.KindUint, what)
	if err != nil {
		return 0, err
	}
	p.off += h.hlen
	if h.neg {
		return 0, p.errorf(start, "%s: want a non-negative integer, got %d", what, int64(h.u))
	}
	if h.u > math.MaxInt64 {
		return 0, p.errorf(start, "%s: %d overflows int64", what, h.u)
	}
	return int64(h.u), nil
}

func (p *msgpackParser) node(depth int) (*Node, *mpErr) {
	start := p.off
	if depth > p.lim.MaxDepth {
		return nil, p.errorf(start, "requests nested deeper than %d", p.lim.MaxDepth)
	}
	if p.nodes++; p.nodes > p.lim.MaxNodes {
		return nil, p.errorf(start, "more than %d requests in one tree", p.lim.MaxNodes)
	}
	fields, err := p.count("request", 5, 1)
	if err != nil {
		return nil, err
	}
	if fields != 3 && fields != 5 {
		return nil, p.errorf(start, "a request is an array of 3 or 5 elements, got %d", fields)
	}
	idOff := p.off
	id, err := p.str("uuid")
	if err != nil {
		return nil, err
	}
	if len(id) == 0 {
		return nil, p.errorf(idOff, "empty uuid")
	}
	if !utf8.Valid(id) {
		return nil, p.errorf(idOff, "uuid %s is not valid UTF-8", quoteInput(id))
	}
	title, err := p.str("title")
	if err != nil {
		return nil, err
	}
	argsOff := p.off
	nargs, err := p.count("args", p.lim.Value.MaxLength, minArgBytes)
	if err != nil {
		return nil, err
	}
	if !p.budget.take(nodeCharge(len(id), len(title), nargs)) {
		return nil, p.overBudget(argsOff)
	}
	// The slots grow as arguments arrive, not to the count the input
	// claims: a claim that the rest of the input cannot back allocates
	// nothing (the budget above has refused any it could not afford).
	n := &Node{ID: string(id), Title: string(title), Args: make([]Arg, 0, min(nargs, 8))}
	// The arguments of this node are due before anything the enclosing
	// nodes still expect: reserve their bytes while reading them.
	p.reserved += nargs * minArgBytes
	for i := 0; i < nargs; i++ {
		p.reserved -= minArgBytes
		aoff := p.off
		if len(p.b)-p.off < 2 || p.b[p.off] != 0x92 {
			return nil, p.errorf(aoff, "an argument is [0, value] or [1, request]").in(i)
		}
		tag := p.b[p.off+1]
		p.off += 2
		switch tag {
		case argValue:
			end, canon, err := scanCanon(p.b, p.off, 0, p.lim.Value)
			if err != nil {
				return nil, p.valueErr(err).in(i)
			}
			v := p.b[p.off:end:end]
			if !canon {
				p.canon.out = p.canon.out[:0]
				if _, err = p.canon.value(p.b, p.off, 0, p.lim.Value); err != nil {
					return nil, p.valueErr(err).in(i)
				}
				if !p.budget.take(len(p.canon.out)) {
					return nil, p.overBudget(p.off).in(i)
				}
				v = p.arena.keep(p.canon.out)
			}
			n.Args = append(n.Args, Arg{Value: v})
			p.off = end
		case argRequest:
			sub, err := p.node(depth + 1)
			if err != nil {
				return nil, err.in(i)
			}
			n.Args = append(n.Args, Arg{Node: sub})
		default:
			return nil, p.errorf(aoff, "unknown argument tag %d (want 0 for a value, 1 for a request)", tag).in(i)
		}
	}
	if fields == 5 {
		if n.Retry.BaseMillis, err = p.integer("base_millis"); err != nil {
			return nil, err
		}
		if n.Retry.MaxAttempts, err = p.integer("max_attempts"); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// MsgpackKey computes the content key of the tree in msgpack form at the
// start of b without building it, for a server that answers from its
// memory cache: it returns the key (equal to the parsed tree's Key), the
// root's id (aliasing b) and argument count, and the bytes the tree takes.
// It reports ok = false, and leaves the reasons to ParseMsgpack, for
// anything but a well-formed tree within lim whose values are all in
// canonical form and whose nodes are small enough to hash in one piece.
// It charges lim.MaxBytes as ParseMsgpack does, so that it accepts only
// trees ParseMsgpack accepts.
func MsgpackKey(b []byte, lim Limits) (key Key, rootID []byte, nargs, used int, ok bool) {
	lim = lim.orDefault()
	k := msgpackKeyer{b: b, lim: lim, budget: newBudget(lim.MaxBytes)}
	var scratch [1024]byte
	key, ok = k.node(1, scratch[:0], true)
	if !ok {
		return Key{}, nil, 0, 0, false
	}
	return key, k.rootID, k.rootArgs, k.off, true
}

type msgpackKeyer struct {
	b        []byte
	off      int
	lim      Limits
	nodes    int
	budget   budget
	rootID   []byte
	rootArgs int
}

// raw reads a header of the wanted kind and returns it, advancing past it.
func (k *msgpackKeyer) raw(want value.Kind) (head, bool) {
	h, err := readHead(k.b, k.off)
	if err != nil || h.kind != want {
		return h, false
	}
	k.off += h.hlen
	return h, true
}

// array reads an array header, with a fast path for fixarray.
func (k *msgpackKeyer) array() (int, bool) {
	if k.off < len(k.b) && k.b[k.off]&0xf0 == 0x90 {
		n := int(k.b[k.off] & 0x0f)
		k.off++
		return n, true
	}
	h, ok := k.raw(value.KindArray)
	return h.n, ok
}

func (k *msgpackKeyer) str(maxLen int) ([]byte, bool) {
	if k.off < len(k.b) && k.b[k.off]&0xe0 == 0xa0 { // fixstr
		n := int(k.b[k.off] & 0x1f)
		if len(k.b)-k.off-1 < n || n > maxLen {
			return nil, false
		}
		s := k.b[k.off+1 : k.off+1+n]
		k.off += 1 + n
		return s, true
	}
	h, ok := k.raw(value.KindString)
	if !ok || h.n > maxLen || len(k.b)-k.off < h.n {
		return nil, false
	}
	s := k.b[k.off : k.off+h.n]
	k.off += h.n
	return s, true
}

func (k *msgpackKeyer) node(depth int, scratch []byte, root bool) (Key, bool) {
	if depth > k.lim.MaxDepth {
		return Key{}, false
	}
	if k.nodes++; k.nodes > k.lim.MaxNodes {
		return Key{}, false
	}
	fields, ok := k.array()
	if !ok || (fields != 3 && fields != 5) {
		return Key{}, false
	}
	id, ok := k.str(k.lim.Value.MaxLength)
	if !ok || len(id) == 0 || !utf8.Valid(id) {
		return Key{}, false
	}
	title, ok := k.str(k.lim.Value.MaxLength)
	if !ok {
		return Key{}, false
	}
	nargs, ok := k.array()
	if !ok || nargs > k.lim.Value.MaxLength || nargs > (len(k.b)-k.off)/minArgBytes {
		return Key{}, false
	}
	if !k.budget.take(nodeCharge(len(id), len(title), nargs)) {
		return Key{}, false
	}
	if root {
		k.rootID, k.rootArgs = id, nargs
	}
	b := append(scratch[:0], keyVersion, tagNode)
	b = binary.AppendUvarint(b, uint64(len(id)))
	b = append(b, id...)
	b = binary.AppendUvarint(b, uint64(nargs))
	for range nargs {
		if len(k.b)-k.off < 2 || k.b[k.off] != 0x92 {
			return Key{}, false
		}
		tag := k.b[k.off+1]
		k.off += 2
		switch tag {
		case argValue:
			end := k.off + 1
			if k.off >= len(k.b) {
				return Key{}, false
			}
			if c := k.b[k.off]; c > 0x7f && c < 0xe0 { // not a fixint: walk it
				e, canon, err := scanCanon(k.b, k.off, 0, k.lim.Value)
				if err != nil || !canon {
					return Key{}, false
				}
				end = e
			}
			v := k.b[k.off:end]
			k.off = end
			b = append(b, tagValue)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case argRequest:
			sub, ok := k.node(depth+1, b[len(b):], false)
			if !ok {
				return Key{}, false
			}
			b = append(b, tagRequest)
			b = append(b, sub[:]...)
		default:
			return Key{}, false
		}
		if len(b) > largeKeyInput {
			return Key{}, false
		}
	}
	if fields == 5 {
		for range 2 {
			h, err := readHead(k.b, k.off)
			if err != nil || h.kind != value.KindUint || h.u > math.MaxInt64 {
				return Key{}, false
			}
			k.off += h.hlen
		}
	}
	return sha256.Sum256(b), true
}
