package request

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/arbor-rpc/arbor/internal/status"
)

// ParseJSON reads a request tree in Cradle's JSON form:
//
//	{"uuid": "rq_post_iss_object+full", "title": "post_iss_object",
//	 "args": {"tuple_element0": "123", "tuple_element1": {"uuid": …, "args": {…}}}}
//
// An object with both "uuid" and "args" is a request; any other value is
// an argument value. Argument values map to msgpack: strings, numbers
// (integers when they have no fraction or exponent and fit 64 bits),
// booleans, null, arrays, and objects as maps with string keys — so
// Cradle's one-member structs {"value0": …} arrive as a map with the key
// "value0". Blobs {"as_file": false, "size": N, "blob": "<base64>"} become
// msgpack bin. A Cradle normalization wrapper (a request whose uuid starts
// with "normalization<", with one argument) is replaced by its argument.
// "args" may also be a JSON array. Cradle's extra fields plain_uuid,
// dll_dir and dll_name are accepted and ignored; base_millis and
// max_attempts become Node.Retry. A uuid must be valid UTF-8; elsewhere
// invalid UTF-8 becomes U+FFFD, as encoding/json does.
//
// Unlike Cradle, key order and whitespace do not matter, and "uuid" may
// follow the arguments. Every error is InvalidArgument and names the byte
// offset and the path of what was wrong (e.g.
// "args.tuple_element2.args.tuple_element0"), except a tree over
// lim.MaxBytes, which is ResourceExhausted. Zero fields of lim take
// DefaultLimits; deeper or larger trees are refused, never a stack
// overflow, and what the reader allocates stays a small multiple of
// len(data).
func ParseJSON(data []byte, lim Limits) (*Node, error) {
	lim = lim.orDefault()
	p := &jsonParser{data: data, lim: lim, budget: newBudget(lim.MaxBytes)}
	root, jerr := p.scan()
	if jerr == nil {
		jerr = p.root(root)
	}
	if jerr != nil {
		return nil, jerr.status()
	}
	return p.tree, nil
}

// UnmarshalJSON reads n from Cradle JSON with the default limits (see
// ParseJSON).
func (n *Node) UnmarshalJSON(data []byte) error {
	m, err := ParseJSON(data, Limits{})
	if err != nil {
		return err
	}
	*n = *m
	return nil
}

// jsonParser reads a tree in two passes: scan checks the syntax and notes
// where every object and array ends (spans), then the interpreting pass
// walks the text again, looking ahead into an object's keys to tell a
// request from a value, and builds the nodes and the canonical msgpack of
// each value directly. Nothing is kept per scalar, and error paths are
// built only on the way out of an error.
type jsonParser struct {
	data     []byte
	lim      Limits
	spans    []span
	lastSpan int // the span found last
	nodes    int
	budget   budget
	canon    canonWriter // the value being encoded
	arena    arena       // the values kept
	sbuf     []byte      // an unescaped string
	bbuf     []byte      // a decoded blob
	tree     *Node
}

// span is an object or array: where it opens, where it ends (just past
// the closing bracket; while scanning, the index+1 of the enclosing
// container), and how many members or elements it has.
type span struct {
	off, end, n uint32
}

// jsonErr is an error on its way out: the path is collected innermost
// first as each level returns it.
type jsonErr struct {
	off  int
	msg  string
	code status.Code
	path []string
}

func jerrorf(off int, format string, args ...any) *jsonErr {
	return &jsonErr{off: off, msg: fmt.Sprintf(format, args...), code: status.InvalidArgument}
}

// in adds the path elements of the level the error comes out of, given
// outermost first ("args", "tuple_element2").
func (e *jsonErr) in(elems ...string) *jsonErr {
	for i := len(elems) - 1; i >= 0; i-- {
		e.path = append(e.path, elems[i])
	}
	return e
}

func (e *jsonErr) status() error {
	msg := e.msg
	if len(e.path) > 0 {
		p := slices.Clone(e.path)
		slices.Reverse(p)
		msg = joinPath(elide(p)) + ": " + msg
	}
	s := status.Errorf(e.code, "request JSON: %s (at byte %d)", msg, e.off)
	s.Category = status.ErrSerialization
	return s
}

func tupleElem(i int) string { return "tuple_element" + strconv.Itoa(i) }
func indexElem(i int) string { return "[" + strconv.Itoa(i) + "]" }

// root interprets the top-level value, which must be a request.
func (p *jsonParser) root(off int) *jsonErr {
	if p.data[off] != '{' || !p.isRequest(off) {
		return jerrorf(off, "want a request object with \"uuid\" and \"args\", got %s", p.describe(off))
	}
	a, err := p.request(off, 1)
	if err != nil {
		return err
	}
	if a.Node == nil {
		return jerrorf(off, "the request is a normalization of a plain value, not a function call")
	}
	p.tree = a.Node
	return nil
}

// normalizationPrefix starts the uuid of Cradle's normalization requests,
// which wrap a plain argument value.
const normalizationPrefix = "normalization<"

// arg interprets the JSON value at off in argument position; depth is the
// request nesting depth a request here would have.
func (p *jsonParser) arg(off, depth int) (Arg, *jsonErr) {
	if p.data[off] == '{' {
		uuid, args, _ := p.classify(off)
		if uuid && args {
			return p.request(off, depth)
		}
		if uuid {
			return Arg{}, jerrorf(off, "object has \"uuid\" but no \"args\": a request needs both (write \"args\": {} for none)")
		}
	}
	p.canon.out = p.canon.out[:0]
	if err := p.value(off, 0); err != nil {
		return Arg{}, err
	}
	if !p.budget.take(len(p.canon.out)) {
		return Arg{}, p.overBudget(off)
	}
	return Arg{Value: p.arena.keep(p.canon.out)}, nil
}

func (p *jsonParser) overBudget(off int) *jsonErr {
	return &jsonErr{off: off, code: status.ResourceExhausted,
		msg: fmt.Sprintf("the decoded request tree would take more than %d bytes (Limits.MaxBytes)", p.budget.max)}
}

// The fields of a request object.
var requestFields = [...]string{"uuid", "title", "args", "plain_uuid", "dll_dir", "dll_name", "base_millis", "max_attempts"}

const (
	fieldUUID = iota
	fieldTitle
	fieldArgs
	fieldPlainUUID
	fieldDLLDir
	fieldDLLName
	fieldBaseMillis
	fieldMaxAttempts
)

// request interprets the request object at off.
func (p *jsonParser) request(off, depth int) (Arg, *jsonErr) {
	if depth > p.lim.MaxDepth {
		return Arg{}, jerrorf(off, "requests nested deeper than %d", p.lim.MaxDepth)
	}
	n := &Node{}
	idOff, titleOff, argsOff := -1, -1, -1
	seen := 0
	it := p.iter(off)
	for m, ok := it.member(); ok; m, ok = it.member() {
		field := -1
		for i, name := range requestFields {
			if p.keyIs(m, name) {
				field = i
				break
			}
		}
		if field < 0 {
			k, _ := p.str(m.key)
			return Arg{}, jerrorf(m.key, "unknown request field %s (want uuid, title, args)", quoteInput(k))
		}
		if seen&(1<<field) != 0 {
			return Arg{}, jerrorf(m.key, "duplicate key %q", requestFields[field])
		}
		seen |= 1 << field
		name := requestFields[field]
		isStr := p.data[m.val] == '"'
		switch field {
		case fieldUUID:
			if !isStr {
				return Arg{}, jerrorf(m.val, "want a non-empty string, got %s", p.describe(m.val)).in(name)
			}
			s, bad := p.str(m.val)
			if len(s) == 0 {
				return Arg{}, jerrorf(m.val, "want a non-empty string, got an empty one").in(name)
			}
			if bad {
				return Arg{}, jerrorf(m.val, "uuid %s is not valid UTF-8", quoteInput(p.data[m.val:stringEnd(p.data, m.val)])).in(name)
			}
			idOff = m.val
		case fieldTitle:
			if !isStr {
				return Arg{}, jerrorf(m.val, "want a string, got %s", p.describe(m.val)).in(name)
			}
			titleOff = m.val
		case fieldArgs:
			if c := p.data[m.val]; c != '{' && c != '[' {
				return Arg{}, jerrorf(m.val, "want an object of tuple_elementN members, got %s", p.describe(m.val)).in(name)
			}
			argsOff = m.val
		case fieldPlainUUID, fieldDLLDir, fieldDLLName:
			if !isStr {
				return Arg{}, jerrorf(m.val, "want a string, got %s", p.describe(m.val)).in(name)
			}
		case fieldBaseMillis, fieldMaxAttempts:
			x, err := p.int64Field(m.val)
			if err != nil {
				return Arg{}, err.in(name)
			}
			if field == fieldBaseMillis {
				n.Retry.BaseMillis = x
			} else {
				n.Retry.MaxAttempts = x
			}
		}
	}
	if p.nodes++; p.nodes > p.lim.MaxNodes {
		return Arg{}, jerrorf(off, "more than %d requests in one tree", p.lim.MaxNodes)
	}
	// The id and title are no larger than their text (three times, for
	// invalid UTF-8 in a title): the budget is charged before the
	// argument slots, the part a count could make large.
	s, _ := p.str(idOff)
	n.ID = string(s)
	if titleOff >= 0 {
		s, _ = p.str(titleOff)
		n.Title = string(s)
	}
	nargs := int(p.span(argsOff).n)
	if !p.budget.take(nodeCharge(len(n.ID), len(n.Title), nargs)) {
		return Arg{}, p.overBudget(argsOff)
	}
	n.Args = make([]Arg, nargs)
	ait := p.iter(argsOff)
	if p.data[argsOff] == '[' {
		for i := 0; ; i++ {
			e, ok := ait.elem()
			if !ok {
				break
			}
			a, err := p.arg(e, depth+1)
			if err != nil {
				return Arg{}, err.in("args", indexElem(i))
			}
			n.Args[i] = a
		}
	} else {
		for m, ok := ait.member(); ok; m, ok = ait.member() {
			k, _ := p.str(m.key)
			idx, ok := tupleIndexBytes(k)
			if !ok || idx >= nargs {
				want := "tuple_element0"
				if nargs > 1 {
					want = fmt.Sprintf("tuple_element0 … tuple_element%d", nargs-1)
				}
				return Arg{}, jerrorf(m.key, "unexpected key %s (want %s)", quoteInput(k), want).in("args")
			}
			if a := n.Args[idx]; a.Node != nil || a.Value != nil {
				return Arg{}, jerrorf(m.key, "duplicate key %q", tupleElem(idx)).in("args")
			}
			a, err := p.arg(m.val, depth+1)
			if err != nil {
				return Arg{}, err.in("args", tupleElem(idx))
			}
			n.Args[idx] = a
		}
	}
	if strings.HasPrefix(n.ID, normalizationPrefix) {
		if len(n.Args) != 1 {
			return Arg{}, jerrorf(off, "normalization wrapper %s has %d arguments, want 1", quoteInput(n.ID), len(n.Args))
		}
		p.nodes--
		return n.Args[0], nil
	}
	return Arg{Node: n}, nil
}

// int64Field reads a non-negative integer field (base_millis, size).
func (p *jsonParser) int64Field(off int) (int64, *jsonErr) {
	d := p.data
	if c := d[off]; c != '-' && (c < '0' || c > '9') {
		return 0, jerrorf(off, "want a non-negative integer, got %s", p.describe(off))
	}
	num := d[off:p.valueEnd(off)]
	u, neg, ok := parseJSONInt(num)
	switch {
	case !ok && bytes.ContainsAny(num, ".eE"):
		return 0, jerrorf(off, "want a non-negative integer, got %s", clipInput(num))
	case neg && (u != 0 || !ok):
		return 0, jerrorf(off, "want a non-negative integer, got %s", clipInput(num))
	case !ok || u > math.MaxInt64:
		return 0, jerrorf(off, "%s overflows int64", clipInput(num))
	}
	return int64(u), nil
}

// parseJSONInt reads a checked JSON number that has no fraction or
// exponent: its magnitude and sign; ok is false for anything else and for
// a magnitude past uint64.
func parseJSONInt(s []byte) (u uint64, neg, ok bool) {
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if len(s) == 0 {
		return 0, neg, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, neg, false
		}
		d := uint64(c - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, neg, false
		}
		u = u*10 + d
	}
	return u, neg, true
}
