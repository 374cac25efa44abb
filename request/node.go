// Package request is Arbor's model of a call as a value: a request tree.
//
// A [Node] names a function by id (Cradle's "uuid"), carries an optional
// title for introspection, and has positional arguments; each argument is
// either a msgpack-encoded value or another request (a subrequest), to any
// depth. The package builds trees in Go ([New]), reads and writes them as
// Cradle JSON ([ParseJSON], [Node.MarshalJSON]) and in a compact msgpack
// form for the wire ([ParseMsgpack], [AppendMsgpack]), and computes their
// content keys ([Node.Key]): a SHA-256 Merkle hash that is the same on every
// machine for the same tree.
//
// The decoders take input from peers: what they allocate stays a small
// multiple of the input and within [Limits] (depth, node count, and a
// per-tree allocation budget, MaxBytes), and an error names the path, the
// byte offset and the limit, quoting little of the input.
//
// The suffix of a function id names its caching level ([LevelOf]): "+none",
// "+mem", "+full", "+mem_vb", "+full_vb"; no suffix means none.
//
// What it is not: it does not resolve requests (package resolve does), look
// functions up, or cache anything. Values are opaque msgpack here: the
// package checks that they are well formed and brings them into one
// canonical encoding, so that equal values give equal keys, but never
// interprets them: values of a type with several encodings of one value
// (a protobuf message as binary or as a JSON map) are brought into one
// by the engine, which knows the functions' types (resolve.Normalizer),
// before it computes keys.
package request

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
)

// Node is one request: a function id, a title, and arguments. A Node is a
// plain value: build it, then treat it as immutable while it is being
// resolved, encoded or hashed.
type Node struct {
	// ID is the function id (Cradle's "uuid"), including its caching
	// level suffix, e.g. "rq_post_iss_object+full".
	ID string
	// Title names the request in status trees and introspection. It is not
	// part of the content key.
	Title string
	// Args are the positional arguments.
	Args []Arg
	// Retry is the retry hint Cradle writes with some requests
	// (base_millis, max_attempts); zero when absent. It is not part of
	// the content key.
	Retry RetryHint

	err error // the first error met while building with New
}

// Arg is one argument: a value (Node == nil) or a subrequest.
type Arg struct {
	// Value is the msgpack encoding of the argument, in canonical form
	// (see Canonical). Used only when Node is nil.
	Value []byte
	// Node is the subrequest whose result is the argument.
	Node *Node
}

// RetryHint is the retry policy carried by a request in Cradle's JSON
// (base_millis, max_attempts). Zero means none given.
type RetryHint struct {
	BaseMillis  int64
	MaxAttempts int64
}

// IsRequest reports whether the argument is a subrequest.
func (a Arg) IsRequest() bool { return a.Node != nil }

// Sub returns a subrequest argument.
func Sub(n *Node) Arg { return Arg{Node: n} }

// ValueOf returns a value argument holding v encoded as msgpack: plain Go
// values (bool, integers, floats, string, []byte, []any, map[string]any,
// json.Number, nil) have a fixed encoding; other types (structs, slices,
// maps) go through the reflective msgpack encoder. The encoding is brought
// into canonical form.
func ValueOf(v any) (Arg, error) {
	b, err := value.AppendAny(nil, v)
	if err != nil {
		return Arg{}, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, "encoding a request argument")
	}
	c, err := Canonical(b)
	if err != nil {
		return Arg{}, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, "encoding a request argument")
	}
	return Arg{Value: c}, nil
}

// Raw returns a value argument from its msgpack encoding, which must be
// exactly one well-formed value; it is brought into canonical form (and
// copied only if that changes it).
func Raw(msgpack []byte) (Arg, error) {
	c, err := Canonical(msgpack)
	if err != nil {
		return Arg{}, status.Wrap(status.InvalidArgument, status.ErrSerialization, err, "request argument")
	}
	return Arg{Value: c}, nil
}

// New builds a request for function id. Each argument is a subrequest if
// it is a *Node, used as is if it is an Arg, and otherwise encoded as with
// ValueOf:
//
//	tree := request.New("add+mem", request.New("add", 1, 2), 3)
//
// An argument that cannot be encoded does not panic: the error is kept in
// the node and returned by Err, Validate, and whatever encodes or resolves
// the tree.
func New(id string, args ...any) *Node {
	n := &Node{ID: id, Args: make([]Arg, len(args))}
	for i, a := range args {
		switch x := a.(type) {
		case *Node:
			if x == nil {
				n.setErr(status.Errorf(status.InvalidArgument, "%s: argument %d is a nil *Node", id, i))
			}
			n.Args[i] = Arg{Node: x}
		case Arg:
			n.Args[i] = x
		default:
			v, err := ValueOf(a)
			if err != nil {
				n.setErr(status.Wrap(status.InvalidArgument, status.ErrSerialization, err, fmt.Sprintf("%s: argument %d", id, i)))
			}
			n.Args[i] = v
		}
	}
	return n
}

func (n *Node) setErr(err error) {
	if n.err == nil {
		n.err = err
	}
}

// WithTitle sets the title and returns n, for use in expressions.
func (n *Node) WithTitle(title string) *Node {
	n.Title = title
	return n
}

// Err returns the first error met while building the tree with New, or nil.
func (n *Node) Err() error {
	var found error
	n.walk(0, 1<<20, func(m *Node, _ int) bool {
		if m.err != nil {
			found = m.err
			return false
		}
		return true
	})
	return found
}

// walk visits the tree depth first, pre-order, until visit returns false.
// It does not descend below maxDepth (a cycle cannot hang it).
func (n *Node) walk(depth, maxDepth int, visit func(*Node, int) bool) bool {
	if n == nil || depth > maxDepth {
		return true
	}
	if !visit(n, depth) {
		return false
	}
	for _, a := range n.Args {
		if a.Node != nil && !a.Node.walk(depth+1, maxDepth, visit) {
			return false
		}
	}
	return true
}

// Limits bound the trees a decoder builds and the engine accepts.
type Limits struct {
	// MaxDepth bounds the nesting of subrequests: a request without
	// subrequests has depth 1.
	MaxDepth int
	// MaxNodes bounds the number of requests in one tree.
	MaxNodes int
	// MaxBytes bounds the memory a decoder (ParseJSON, ParseMsgpack) may
	// allocate for one tree: its nodes, argument slots, ids and titles,
	// and the values it copies or re-encodes (values that alias the
	// input cost nothing). A tree over it is refused with
	// ResourceExhausted while it is being read, before the memory is
	// taken. Validate does not check it: a tree built in Go is already
	// in memory.
	MaxBytes int
	// Value bounds each argument value (nesting, lengths).
	Value value.Limits
}

// DefaultLimits are used where Limits are zero.
var DefaultLimits = Limits{MaxDepth: 64, MaxNodes: 10000, MaxBytes: 16 << 20, Value: value.DefaultLimits}

// OrDefault returns l with its zero (or negative) fields taken from
// DefaultLimits: the limits a decoder given l enforces.
func (l Limits) OrDefault() Limits { return l.orDefault() }

// orDefault fills zero fields from DefaultLimits.
func (l Limits) orDefault() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxNodes <= 0 {
		l.MaxNodes = DefaultLimits.MaxNodes
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.Value.MaxDepth <= 0 {
		l.Value.MaxDepth = DefaultLimits.Value.MaxDepth
	}
	if l.Value.MaxLength <= 0 {
		l.Value.MaxLength = DefaultLimits.Value.MaxLength
	}
	return l
}

// Validate checks a tree against the limits (zero fields take the
// defaults): every node has an id in valid UTF-8, no argument is both or
// neither a value and a subrequest, values are single well-formed msgpack
// values, depth and node count are within bounds, and no error was met
// while building it.
// Errors are InvalidArgument and name the path of the offending node.
func (n *Node) Validate(lim Limits) error {
	if n == nil {
		return status.New(status.InvalidArgument, "request is nil")
	}
	var stack [32]int
	v := validator{lim: lim.orDefault(), path: stack[:0]}
	return v.check(n, 1)
}

// validator walks a tree for Validate, keeping the path as a stack of
// argument indexes (formatted only for an error).
type validator struct {
	lim   Limits
	count int
	path  []int
}

func (v *validator) where() string { return FormatPath(v.path) }

func (v *validator) check(m *Node, depth int) error {
	if depth > v.lim.MaxDepth {
		return status.Errorf(status.InvalidArgument, "%s: requests nested deeper than %d", v.where(), v.lim.MaxDepth)
	}
	if v.count++; v.count > v.lim.MaxNodes {
		return status.Errorf(status.InvalidArgument, "%s: more than %d requests in one tree", v.where(), v.lim.MaxNodes)
	}
	if m.err != nil {
		return status.Wrap(status.InvalidArgument, nil, m.err, v.where())
	}
	if m.ID == "" {
		return status.Errorf(status.InvalidArgument, "%s: request has an empty uuid", v.where())
	}
	if !utf8.ValidString(m.ID) {
		return status.Errorf(status.InvalidArgument, "%s: uuid %s is not valid UTF-8", v.where(), quoteInput(m.ID))
	}
	for i, a := range m.Args {
		v.path = append(v.path, i)
		if a.Node != nil {
			if a.Value != nil {
				return status.Errorf(status.InvalidArgument, "%s: argument is both a value and a subrequest", v.where())
			}
			if err := v.check(a.Node, depth+1); err != nil {
				return err
			}
		} else if e := checkValue(a.Value, v.lim.Value); e != nil {
			return status.Wrap(status.InvalidArgument, status.ErrSerialization, e, v.where())
		}
		v.path = v.path[:len(v.path)-1]
	}
	return nil
}

// Count returns the number of requests in the tree (n included), stopping
// at limit+1 so that a cycle or a huge tree costs bounded time.
func (n *Node) Count(limit int) int {
	c := 0
	n.walk(0, limit, func(*Node, int) bool { c++; return c <= limit })
	return c
}

// String returns a short description: title (or id) and argument count.
func (n *Node) String() string {
	if n == nil {
		return "<nil request>"
	}
	name := n.ID
	if n.Title != "" {
		name = n.Title + " (" + n.ID + ")"
	}
	return fmt.Sprintf("%s with %d argument(s)", name, len(n.Args))
}

// Path locates a node in a tree as the chain of argument indexes from the
// root. It is built on the stack while walking a tree, and formatted only
// when an error needs it, in Cradle's JSON terms:
// "args.tuple_element2.args.tuple_element0". The root's path is nil and
// formats as "request".
type Path struct {
	Parent *Path
	Index  int
}

// Child returns the path of argument i of the node at p.
func (p *Path) Child(i int) Path { return Path{Parent: p, Index: i} }

// Indexes returns the argument indexes from the root.
func (p *Path) Indexes() []int {
	var out []int
	for q := p; q != nil; q = q.Parent {
		out = append(out, q.Index)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// String formats the path, "request" for the root.
func (p *Path) String() string {
	if p == nil {
		return "request"
	}
	return FormatPath(p.Indexes())
}

// FormatPath formats argument indexes as a Cradle JSON path:
// [2 0] → "args.tuple_element2.args.tuple_element0".
func FormatPath(idx []int) string {
	if len(idx) == 0 {
		return "request"
	}
	var sb strings.Builder
	for i, x := range idx {
		if i > 0 {
			sb.WriteByte('.')
		}
		fmt.Fprintf(&sb, "args.tuple_element%d", x)
	}
	return sb.String()
}

// ParsePath is the inverse of FormatPath; "" and "request" are the root.
func ParsePath(s string) ([]int, error) {
	if s == "" || s == "request" {
		return nil, nil
	}
	// Each level takes at least "args.tuple_element0" (19 bytes), which
	// bounds the slice before it is sized.
	out := make([]int, 0, len(s)/19+1)
	for rest, part := s, 1; ; part += 2 {
		args, after, ok := strings.Cut(rest, ".")
		if args != "args" {
			return nil, status.Errorf(status.InvalidArgument, "bad request path %s: part %d is not \"args\"", quoteInput(s), part)
		}
		if !ok {
			return nil, status.Errorf(status.InvalidArgument, "bad request path %s (want args.tuple_elementN, repeated)", quoteInput(s))
		}
		elem, next, more := strings.Cut(after, ".")
		idx, ok := tupleIndex(elem)
		if !ok {
			return nil, status.Errorf(status.InvalidArgument, "bad request path %s: part %d is not tuple_elementN", quoteInput(s), part+1)
		}
		out = append(out, idx)
		if !more {
			return out, nil
		}
		rest = next
	}
}

// tupleIndex parses "tuple_elementN" (N in canonical decimal form).
func tupleIndex(k string) (int, bool) {
	d, ok := strings.CutPrefix(k, "tuple_element")
	if !ok {
		return 0, false
	}
	return tupleDigits([]byte(d))
}

// tupleIndexBytes is tupleIndex for a key that has not been made a string.
func tupleIndexBytes(k []byte) (int, bool) {
	const prefix = "tuple_element"
	if len(k) < len(prefix) || string(k[:len(prefix)]) != prefix {
		return 0, false
	}
	return tupleDigits(k[len(prefix):])
}

func tupleDigits(d []byte) (int, bool) {
	if len(d) == 0 || len(d) > 9 || (len(d) > 1 && d[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// Level is a caching level, named by the suffix of a function id.
type Level uint8

// The caching levels.
const (
	// None: resolved every time.
	None Level = iota
	// Mem: the in-process memory cache; concurrent identical requests run
	// once.
	Mem
	// Full: the memory cache, then the secondary (disk or Redis) cache.
	Full
	// MemVB: as Mem, keyed on the resolved argument values.
	MemVB
	// FullVB: as Full, keyed on the resolved argument values.
	FullVB
)

var levelNames = [...]string{None: "none", Mem: "mem", Full: "full", MemVB: "mem_vb", FullVB: "full_vb"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// Cached reports whether results at this level are cached.
func (l Level) Cached() bool { return l != None }

// UsesSecondary reports whether the level goes on to the secondary cache.
func (l Level) UsesSecondary() bool { return l == Full || l == FullVB }

// ValueBased reports whether the key is taken over the resolved argument
// values rather than over the request.
func (l Level) ValueBased() bool { return l == MemVB || l == FullVB }

// LevelOf returns the caching level named by id's suffix: "+none", "+mem",
// "+full", "+mem_vb", "+full_vb". No suffix, or another one, means None.
func LevelOf(id string) Level {
	i := strings.LastIndexByte(id, '+')
	if i < 0 {
		return None
	}
	switch id[i+1:] {
	case "mem":
		return Mem
	case "full":
		return Full
	case "mem_vb":
		return MemVB
	case "full_vb":
		return FullVB
	}
	return None
}

// Level is LevelOf(n.ID).
func (n *Node) Level() Level { return LevelOf(n.ID) }
