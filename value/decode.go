package value

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// decState is what one decoding carries down: the reader, the host (for
// Unmarshaler types), the nesting depth and the allocation budget.
type decState struct {
	r      *Reader
	host   any
	depth  int
	budget int64 // bytes the decoded value may still allocate
	limit  int64 // the budget it started with, for messages
}

// Allocation budget of one decode, unless Limits.MaxAlloc sets it: the
// decoded value may take allocRatio times the encoded size, plus
// allocFloor. Each encoded element takes at least a byte but may become
// many bytes in memory (an empty map becomes a whole struct), so without
// a budget a small input could allocate without bound.
const (
	allocRatio = 16
	allocFloor = 64 << 10
)

func newDecState(r *Reader, host any) decState {
	budget := r.lim.MaxAlloc
	if budget <= 0 {
		budget = min(int64(len(r.b)-r.off)*allocRatio+allocFloor, MaxDecodeBytes)
	}
	return decState{r: r, host: host, budget: budget, limit: budget}
}

func (d *decState) errorf(format string, args ...any) error {
	return &Error{Offset: d.r.off, Msg: fmt.Sprintf(format, args...)}
}

// wrap turns a reader error into one that says what was expected.
func (d *decState) wrap(err error, want string) error {
	var ve *Error
	if errors.As(err, &ve) {
		if ve.Path != "" {
			return ve
		}
		if rest, ok := strings.CutPrefix(ve.Msg, "expected "); ok {
			// The reader names the msgpack kind it wanted ("map"); say the
			// Go type instead.
			if i := strings.Index(rest, ", got "); i >= 0 {
				return &Error{Offset: ve.Offset, Msg: "expected " + want + rest[i:]}
			}
			return ve
		}
		return &Error{Offset: ve.Offset, Msg: "expected " + want + ": " + ve.Msg}
	}
	return &Error{Offset: d.r.off, Msg: "expected " + want + ": " + err.Error()}
}

// in adds one step (a field name, an element or key) to err's path.
func (d *decState) in(err error, format string, args ...any) error {
	step := fmt.Sprintf(format, args...)
	var ve *Error
	if !errors.As(err, &ve) {
		ve = &Error{Offset: d.r.off, Msg: err.Error()}
	}
	e := *ve
	e.Path = joinStep(step, e.Path)
	return &e
}

// joinStep prepends a step: fields join with dots, elements and keys in
// brackets ("field Items[3].Name").
func joinStep(step, path string) string {
	var s string
	switch {
	case strings.HasPrefix(step, "field "):
		s = strings.TrimPrefix(step, "field ")
	case strings.HasPrefix(step, "element "):
		s = "[" + strings.TrimPrefix(step, "element ") + "]"
	case strings.HasPrefix(step, "key "):
		s = "[" + strings.TrimPrefix(step, "key ") + "]"
	default:
		s = step
	}
	if path == "" {
		return s
	}
	if path[0] == '[' {
		return s + path
	}
	return s + "." + path
}

func (d *decState) enter() error {
	d.depth++
	if d.depth > d.r.lim.MaxDepth {
		return d.errorf("nesting deeper than %d", d.r.lim.MaxDepth)
	}
	return nil
}

func (d *decState) leave() { d.depth-- }

// alloc charges n elements of size bytes to the budget before they are
// made.
func (d *decState) alloc(n int, size uintptr) error {
	need := int64(n) * int64(max(size, 1))
	if need > d.budget || need < 0 {
		return d.errorf("decoding would allocate more than %d bytes (limit for a %d-byte input; see value.Limits.MaxAlloc)", d.limit, len(d.r.b))
	}
	d.budget -= need
	return nil
}

func decBool(d *decState, p unsafe.Pointer) error {
	v, err := d.r.ReadBool()
	if err != nil {
		return d.nilOr(err, "bool")
	}
	*(*bool)(p) = v
	return nil
}

// nilOr says "got nil" plainly for a nil where a value is needed.
func (d *decState) nilOr(err error, want string) error {
	if d.r.PeekKind() == KindNil {
		return d.errorf("expected %s, got nil", want)
	}
	return d.wrap(err, want)
}

func decFloat32(d *decState, p unsafe.Pointer) error {
	v, err := d.r.ReadFloat()
	if err != nil {
		return d.wrap(err, "float32")
	}
	*(*float32)(p) = float32(v)
	return nil
}

func decFloat64(d *decState, p unsafe.Pointer) error {
	v, err := d.r.ReadFloat()
	if err != nil {
		return d.wrap(err, "float64")
	}
	*(*float64)(p) = v
	return nil
}

func decString(d *decState, p unsafe.Pointer) error {
	b, err := d.r.ReadStringBytes()
	if err != nil {
		return d.wrap(err, "string")
	}
	if err := d.alloc(len(b), 1); err != nil {
		return err
	}
	*(*string)(p) = string(b)
	return nil
}

func decBytes(d *decState, p unsafe.Pointer) error {
	if d.r.ReadNil() {
		*(*[]byte)(p) = nil
		return nil
	}
	b, err := d.r.readStrBin("bytes")
	if err != nil {
		return d.wrap(err, "bytes")
	}
	if err := d.alloc(len(b), 1); err != nil {
		return err
	}
	*(*[]byte)(p) = append(make([]byte, 0, len(b)), b...)
	return nil
}

func decAny(d *decState, p unsafe.Pointer) error {
	start := d.r.off
	raw, err := d.r.Skip()
	if err != nil {
		return d.wrap(err, "a value")
	}
	// Plain values cost at most a few dozen bytes per encoded byte.
	if err := d.alloc(len(raw), 32); err != nil {
		d.r.off = start
		return err
	}
	sub := Reader{b: raw, lim: d.r.lim}
	budget := int64(len(raw)) * 32
	v, err := sub.readAny(d.depth, &budget)
	if err != nil {
		var ve *Error
		if errors.As(err, &ve) {
			e := *ve
			e.Offset += start
			return &e
		}
		return err
	}
	*(*any)(p) = v
	return nil
}

// decodeKey decodes a map key. Keys written as strings (JSON objects) are
// accepted for integer-keyed maps, as encoding/json does.
func decodeKey(d *decState, kp *plan, kv reflect.Value) error {
	k := kv.Kind()
	isInt := k >= reflect.Int && k <= reflect.Int64
	isUint := k >= reflect.Uint && k <= reflect.Uintptr
	if (isInt || isUint) && d.r.PeekKind() == KindString {
		start := d.r.off
		s, err := d.r.ReadString()
		if err != nil {
			return d.wrap(err, kp.name)
		}
		if isInt {
			v, err := strconv.ParseInt(s, 10, kv.Type().Bits())
			if err != nil {
				d.r.off = start
				return d.errorf("expected %s key, got %q", kp.name, truncate(s))
			}
			kv.SetInt(v)
			return nil
		}
		v, err := strconv.ParseUint(s, 10, kv.Type().Bits())
		if err != nil {
			d.r.off = start
			return d.errorf("expected %s key, got %q", kp.name, truncate(s))
		}
		kv.SetUint(v)
		return nil
	}
	return kp.dec(d, kv.Addr().UnsafePointer())
}

// truncate shortens text quoted from the input in error messages.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:max], len(s))
}

func stringsEqualFold(a, b string) bool {
	if !utf8.ValidString(b) {
		return false
	}
	return strings.EqualFold(a, b)
}
