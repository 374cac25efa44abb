package request

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/value"
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
// max_attempts become Node.Retry.
//
// Unlike Cradle, key order and whitespace do not matter, and "uuid" may
// follow the arguments. Every error is InvalidArgument and names the byte
// offset and the path of what was wrong (e.g.
// "args.tuple_element2.args.tuple_element0"). Zero fields of lim take
// DefaultLimits; deeper or larger trees are refused, never a stack
// overflow.
func ParseJSON(data []byte, lim Limits) (*Node, error) {
	lim = lim.orDefault()
	p := &jsonParser{data: data, lim: lim, maxJSONDepth: 4*lim.MaxDepth + lim.Value.MaxDepth + 8}
	p.dec = json.NewDecoder(bytes.NewReader(data))
	p.dec.UseNumber()
	root, err := p.parse(0)
	if err != nil {
		return nil, err
	}
	off := p.start()
	if tok, err := p.dec.Token(); err != io.EOF {
		if err != nil {
			return nil, p.syntaxError(err)
		}
		return nil, jsonErrorf(off, "", "unexpected %v after the request", describeToken(tok))
	}
	if root.kind != '{' || !root.isRequest() {
		return nil, jsonErrorf(root.off, "", "want a request object with \"uuid\" and \"args\", got %s", root.describe())
	}
	a, err := p.arg(root, "", 1)
	if err != nil {
		return nil, err
	}
	if a.Node == nil {
		return nil, jsonErrorf(root.off, "", "the request is a normalization of a plain value, not a function call")
	}
	return a.Node, nil
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

// jsonError is a request JSON error: InvalidArgument naming path and offset.
func jsonErrorf(off int, path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	e := status.Errorf(status.InvalidArgument, "request JSON: %s (at byte %d)", msg, off)
	e.Category = status.ErrSerialization
	return e
}

// jval is one parsed JSON value with its offset.
type jval struct {
	off  int
	kind byte // '{' '[' 's' (string) 'n' (number) 'b' (bool) 'z' (null)
	str  string
	b    bool
	keys []string
	koff []int
	vals []*jval
}

func (j *jval) get(key string) (*jval, bool) {
	for i, k := range j.keys {
		if k == key {
			return j.vals[i], true
		}
	}
	return nil, false
}

func (j *jval) isRequest() bool {
	if j.kind != '{' {
		return false
	}
	_, u := j.get("uuid")
	_, a := j.get("args")
	return u && a
}

func (j *jval) describe() string {
	switch j.kind {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	}
	return "null"
}

type jsonParser struct {
	data         []byte
	dec          *json.Decoder
	lim          Limits
	maxJSONDepth int
	lastOff      int
	nodes        int
}

// start returns the offset where the next value begins.
func (p *jsonParser) start() int {
	off := int(p.dec.InputOffset())
	for off < len(p.data) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	p.lastOff = off
	return off
}

func (p *jsonParser) syntaxError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return jsonErrorf(int(se.Offset), "", "malformed JSON: %v", se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return jsonErrorf(len(p.data), "", "malformed JSON: unexpected end of input")
	}
	return jsonErrorf(p.lastOff, "", "malformed JSON: %v", err)
}

func describeToken(t json.Token) string {
	switch x := t.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", string(x))
	case string:
		return fmt.Sprintf("string %q", x)
	case json.Number:
		return "number " + string(x)
	case bool:
		return fmt.Sprintf("%v", x)
	}
	return "null"
}

// parse reads one JSON value into a jval tree.
func (p *jsonParser) parse(depth int) (*jval, error) {
	off := p.start()
	if depth > p.maxJSONDepth {
		return nil, jsonErrorf(off, "", "JSON nested deeper than %d", p.maxJSONDepth)
	}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntaxError(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			j := &jval{off: off, kind: '{'}
			for p.dec.More() {
				koff := p.start()
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxError(err)
				}
				k, ok := kt.(string)
				if !ok {
					return nil, jsonErrorf(koff, "", "malformed JSON: object key is not a string")
				}
				if slices.Contains(j.keys, k) {
					return nil, jsonErrorf(koff, "", "duplicate key %q", k)
				}
				v, err := p.parse(depth + 1)
				if err != nil {
					return nil, err
				}
				j.keys = append(j.keys, k)
				j.koff = append(j.koff, koff)
				j.vals = append(j.vals, v)
			}
			if _, err := p.dec.Token(); err != nil { // '}'
				return nil, p.syntaxError(err)
			}
			return j, nil
		case '[':
			j := &jval{off: off, kind: '['}
			for p.dec.More() {
				v, err := p.parse(depth + 1)
				if err != nil {
					return nil, err
				}
				j.vals = append(j.vals, v)
			}
			if _, err := p.dec.Token(); err != nil { // ']'
				return nil, p.syntaxError(err)
			}
			return j, nil
		}
		return nil, jsonErrorf(off, "", "malformed JSON: unexpected %q", string(t))
	case string:
		return &jval{off: off, kind: 's', str: t}, nil
	case json.Number:
		return &jval{off: off, kind: 'n', str: string(t)}, nil
	case bool:
		return &jval{off: off, kind: 'b', b: t}, nil
	case nil:
		return &jval{off: off, kind: 'z'}, nil
	}
	return nil, jsonErrorf(off, "", "malformed JSON: unexpected token %v", tok)
}

// normalizationPrefix starts the uuid of Cradle's normalization requests,
// which wrap a plain argument value.
const normalizationPrefix = "normalization<"

func join(path, elem string) string {
	if path == "" {
		return elem
	}
	return path + "." + elem
}

// arg interprets a JSON value in argument position at path; depth is the
// request nesting depth a request here would have.
func (p *jsonParser) arg(j *jval, path string, depth int) (Arg, error) {
	if j.kind == '{' && j.isRequest() {
		return p.request(j, path, depth)
	}
	if j.kind == '{' {
		if _, ok := j.get("uuid"); ok {
			return Arg{}, jsonErrorf(j.off, path, "object has \"uuid\" but no \"args\": a request needs both (write \"args\": {} for none)")
		}
	}
	v, err := p.value(nil, j, path, 0)
	if err != nil {
		return Arg{}, err
	}
	c, err := canonical(v, p.lim.Value)
	if err != nil {
		return Arg{}, jsonErrorf(j.off, path, "%v", err)
	}
	return Arg{Value: c}, nil
}

// request interprets a request object.
func (p *jsonParser) request(j *jval, path string, depth int) (Arg, error) {
	if depth > p.lim.MaxDepth {
		return Arg{}, jsonErrorf(j.off, path, "requests nested deeper than %d", p.lim.MaxDepth)
	}
	n := &Node{}
	var args *jval
	for i, k := range j.keys {
		v := j.vals[i]
		switch k {
		case "uuid":
			if v.kind != 's' || v.str == "" {
				return Arg{}, jsonErrorf(v.off, join(path, "uuid"), "want a non-empty string, got %s", v.describe())
			}
			n.ID = v.str
		case "title":
			if v.kind != 's' {
				return Arg{}, jsonErrorf(v.off, join(path, "title"), "want a string, got %s", v.describe())
			}
			n.Title = v.str
		case "args":
			if v.kind != '{' && v.kind != '[' {
				return Arg{}, jsonErrorf(v.off, join(path, "args"), "want an object of tuple_elementN members, got %s", v.describe())
			}
			args = v
		case "plain_uuid", "dll_dir", "dll_name":
			if v.kind != 's' {
				return Arg{}, jsonErrorf(v.off, join(path, k), "want a string, got %s", v.describe())
			}
		case "base_millis", "max_attempts":
			x, err := strconv.ParseInt(v.str, 10, 64)
			if v.kind != 'n' || err != nil || x < 0 {
				return Arg{}, jsonErrorf(v.off, join(path, k), "want a non-negative integer, got %s", v.describe())
			}
			if k == "base_millis" {
				n.Retry.BaseMillis = x
			} else {
				n.Retry.MaxAttempts = x
			}
		default:
			return Arg{}, jsonErrorf(j.koff[i], path, "unknown request field %q (want uuid, title, args)", k)
		}
	}
	if p.nodes++; p.nodes > p.lim.MaxNodes {
		return Arg{}, jsonErrorf(j.off, path, "more than %d requests in one tree", p.lim.MaxNodes)
	}
	var elems []*jval
	var elemPath func(i int) string
	if args.kind == '[' {
		elems = args.vals
		elemPath = func(i int) string { return fmt.Sprintf("%s[%d]", join(path, "args"), i) }
	} else {
		elems = make([]*jval, len(args.keys))
		for i, k := range args.keys {
			idx, ok := tupleIndex(k)
			if !ok || idx >= len(args.keys) {
				want := "tuple_element0"
				if len(args.keys) > 1 {
					want = fmt.Sprintf("tuple_element0 … tuple_element%d", len(args.keys)-1)
				}
				return Arg{}, jsonErrorf(args.koff[i], join(path, "args"), "unexpected key %q (want %s)", k, want)
			}
			elems[idx] = args.vals[i]
		}
		elemPath = func(i int) string { return join(path, "args.tuple_element"+strconv.Itoa(i)) }
	}
	n.Args = make([]Arg, len(elems))
	for i, e := range elems {
		a, err := p.arg(e, elemPath(i), depth+1)
		if err != nil {
			return Arg{}, err
		}
		n.Args[i] = a
	}
	if strings.HasPrefix(n.ID, normalizationPrefix) {
		if len(n.Args) != 1 {
			return Arg{}, jsonErrorf(j.off, path, "normalization wrapper %q has %d arguments, want 1", n.ID, len(n.Args))
		}
		p.nodes--
		return n.Args[0], nil
	}
	return Arg{Node: n}, nil
}

// value appends the msgpack encoding of a JSON value in value position.
func (p *jsonParser) value(b []byte, j *jval, path string, depth int) ([]byte, error) {
	if depth > p.lim.Value.MaxDepth {
		return nil, jsonErrorf(j.off, path, "value nested deeper than %d", p.lim.Value.MaxDepth)
	}
	switch j.kind {
	case 'z':
		return value.AppendNil(b), nil
	case 'b':
		return value.AppendBool(b, j.b), nil
	case 's':
		if len(j.str) > p.lim.Value.MaxLength {
			return nil, jsonErrorf(j.off, path, "string of %d bytes exceeds the limit %d", len(j.str), p.lim.Value.MaxLength)
		}
		return value.AppendString(b, j.str), nil
	case 'n':
		if i, err := strconv.ParseInt(j.str, 10, 64); err == nil {
			return value.AppendInt(b, i), nil
		}
		if u, err := strconv.ParseUint(j.str, 10, 64); err == nil {
			return value.AppendUint(b, u), nil
		}
		f, err := strconv.ParseFloat(j.str, 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, jsonErrorf(j.off, path, "number %s is out of range", j.str)
		}
		return value.AppendFloat64(b, f), nil
	case '[':
		if len(j.vals) > p.lim.Value.MaxLength {
			return nil, jsonErrorf(j.off, path, "array of %d elements exceeds the limit %d", len(j.vals), p.lim.Value.MaxLength)
		}
		b = value.AppendArrayHeader(b, len(j.vals))
		for i, e := range j.vals {
			if e.isRequest() {
				return nil, jsonErrorf(e.off, fmt.Sprintf("%s[%d]", path, i), "a subrequest may only be a request argument, not part of a value")
			}
			var err error
			if b, err = p.value(b, e, fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	// object
	if _, ok := j.get("as_file"); ok {
		return p.blob(b, j, path)
	}
	if len(j.keys) > p.lim.Value.MaxLength {
		return nil, jsonErrorf(j.off, path, "object of %d members exceeds the limit %d", len(j.keys), p.lim.Value.MaxLength)
	}
	b = value.AppendMapHeader(b, len(j.keys))
	for i, k := range j.keys {
		e := j.vals[i]
		if e.isRequest() {
			return nil, jsonErrorf(e.off, join(path, k), "a subrequest may only be a request argument, not part of a value")
		}
		b = value.AppendString(b, k)
		var err error
		if b, err = p.value(b, e, join(path, k), depth+1); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// blob decodes {"as_file": false, "size": N, "blob": "<base64>"}.
func (p *jsonParser) blob(b []byte, j *jval, path string) ([]byte, error) {
	var size int64 = -1
	var data []byte
	haveData := false
	for i, k := range j.keys {
		v := j.vals[i]
		switch k {
		case "as_file":
			if v.kind != 'b' {
				return nil, jsonErrorf(v.off, join(path, k), "want a boolean, got %s", v.describe())
			}
			if v.b {
				return nil, jsonErrorf(v.off, join(path, k), "file blobs (as_file: true) are not supported; send the data inline")
			}
		case "size":
			x, err := strconv.ParseInt(v.str, 10, 64)
			if v.kind != 'n' || err != nil || x < 0 {
				return nil, jsonErrorf(v.off, join(path, k), "want a non-negative integer, got %s", v.describe())
			}
			size = x
		case "blob":
			if v.kind != 's' {
				return nil, jsonErrorf(v.off, join(path, k), "want a base64 string, got %s", v.describe())
			}
			d, err := base64.StdEncoding.DecodeString(v.str)
			if err != nil {
				d, err = base64.RawStdEncoding.DecodeString(v.str)
			}
			if err != nil {
				return nil, jsonErrorf(v.off, join(path, k), "blob is not valid base64: %v", err)
			}
			data, haveData = d, true
		default:
			return nil, jsonErrorf(j.koff[i], path, "unexpected key %q in a blob (want as_file, size, blob)", k)
		}
	}
	if size < 0 {
		return nil, jsonErrorf(j.off, path, "blob has no \"size\"")
	}
	if size > int64(p.lim.Value.MaxLength) {
		return nil, jsonErrorf(j.off, path, "blob of %d bytes exceeds the limit %d", size, p.lim.Value.MaxLength)
	}
	if !haveData && size != 0 {
		return nil, jsonErrorf(j.off, path, "blob has size %d but no \"blob\" data", size)
	}
	if int64(len(data)) != size {
		return nil, jsonErrorf(j.off, path, "blob size %d disagrees with its data (%d bytes)", size, len(data))
	}
	return value.AppendBytes(b, data), nil
}
