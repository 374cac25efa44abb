package request

import (
	"fmt"
	"strings"
	"unsafe"
)

// This file holds what the decoders share to keep their memory in
// proportion to their input (the allocation budget, Limits.MaxBytes, and
// the arena argument values are copied into) and their error messages
// short (quoting a little of the input, eliding deep paths).

// The sizes the budget charges for the parts of a decoded tree. A node also
// pays for its id and title bytes, and a value for the bytes it is copied
// or re-encoded into (values that alias the input cost nothing).
const (
	nodeCost = int(unsafe.Sizeof(Node{}))
	argCost  = int(unsafe.Sizeof(Arg{}))
)

// minArgBytes is the fewest bytes one argument takes in msgpack form:
// [0, value] with a one-byte value. A count of arguments is checked
// against it, and the bytes it promises stay reserved until the argument
// is read, so nested nodes cannot claim the same bytes twice.
const minArgBytes = 3

// budget counts what a decoder has allocated for one tree against
// Limits.MaxBytes.
type budget struct {
	left, max int
}

func newBudget(max int) budget { return budget{left: max, max: max} }

// take charges n bytes; it reports false, charging nothing, when they do
// not fit.
func (b *budget) take(n int) bool {
	if n < 0 || n > b.left {
		return false
	}
	b.left -= n
	return true
}

// nodeCharge is what a node with the given id and title lengths and
// argument count costs, for ParseMsgpack and MsgpackKey alike.
func nodeCharge(idLen, titleLen, nargs int) int {
	return nodeCost + idLen + titleLen + nargs*argCost
}

// arena holds the argument values a decoder copies or re-encodes: one
// chunk serves many small values, so a tree of tiny arguments costs a few
// allocations, not one per argument. Each value is capped to its length,
// so appending to one cannot overwrite the next.
type arena struct {
	chunk []byte
}

// arenaChunk is the largest shared chunk; the first ones are smaller, so
// that a small tree takes little. Values over a quarter of it get their
// own allocation.
const arenaChunk = 4 << 10

// keep copies v into the arena and returns the copy.
func (a *arena) keep(v []byte) []byte {
	if len(v) > arenaChunk/4 {
		out := make([]byte, len(v))
		copy(out, v)
		return out
	}
	if cap(a.chunk)-len(a.chunk) < len(v) {
		size := min(arenaChunk, max(256, 2*cap(a.chunk)))
		for size < len(v) {
			size *= 2
		}
		a.chunk = make([]byte, 0, size)
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, v...)
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

// maxQuoted is how many bytes of a client's input an error message quotes.
const maxQuoted = 64

// quoteInput quotes s for an error message: whole if short, otherwise its
// first maxQuoted bytes (cut at a rune boundary), an ellipsis and its
// length, so that a megabyte key does not become a megabyte message.
func quoteInput[S ~string | ~[]byte](s S) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > maxQuoted-4 && cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// clipInput is quoteInput without the quotes, for input written as is
// (a number, a key inside a path).
func clipInput[S ~string | ~[]byte](s S) string {
	if len(s) <= maxQuoted {
		return string(s)
	}
	cut := maxQuoted
	for cut > maxQuoted-4 && cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:cut], len(s))
}

// maxPathElems is how many path elements an error message shows; a
// longer path keeps its first and last few.
const maxPathElems = 12

// elide shortens a list of path elements for an error message.
func elide(elems []string) []string {
	if len(elems) <= maxPathElems {
		return elems
	}
	head, tail := 4, maxPathElems-6
	out := make([]string, 0, maxPathElems)
	out = append(out, elems[:head]...)
	out = append(out, fmt.Sprintf("…(%d more)…", len(elems)-head-tail))
	return append(out, elems[len(elems)-tail:]...)
}

// errPath formats argument indexes for an error message: as FormatPath,
// with the middle of a very deep path left out.
func errPath(idx []int) string {
	if len(idx) <= maxPathElems/2 {
		return FormatPath(idx)
	}
	elems := make([]string, 0, 2*len(idx))
	for _, x := range idx {
		elems = append(elems, "args", fmt.Sprintf("tuple_element%d", x))
	}
	return joinPath(elide(elems))
}

func joinPath(elems []string) string {
	n := 0
	for _, e := range elems {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	for i, e := range elems {
		if i > 0 && !strings.HasPrefix(e, "[") {
			b = append(b, '.')
		}
		b = append(b, e...)
	}
	return string(b)
}
