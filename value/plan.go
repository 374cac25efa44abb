package value

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Marshaler is implemented by types that encode themselves. host is what
// the caller of the encoding passed (the root package passes the
// connection a capability is exported on).
type Marshaler interface {
	AppendMsgpack(b []byte, host any) ([]byte, error)
}

// Unmarshaler is implemented by pointers to types that decode themselves.
type Unmarshaler interface {
	ReadMsgpack(r *Reader, host any) error
}

// Resolver is implemented by pointer types whose values are handles to
// objects that exist already (capability references): ResolveMsgpack,
// called on the nil pointer, returns the pointer the input names, which
// becomes the decoded value, so the same input decodes to the same
// pointer.
type Resolver interface {
	ResolveMsgpack(r *Reader, host any) (any, error)
}

var (
	marshalerType   = reflect.TypeFor[Marshaler]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
	resolverType    = reflect.TypeFor[Resolver]()
	timeType        = reflect.TypeFor[time.Time]()
	bytesType       = reflect.TypeFor[[]byte]()
)

// plan is how one Go type is encoded and decoded, worked out once.
type plan struct {
	t    reflect.Type
	name string
	enc  func(e *encState, b []byte, p unsafe.Pointer) ([]byte, error)
	dec  func(d *decState, p unsafe.Pointer) error
	// err says why the type cannot be carried, or is nil.
	err error
}

// field is one encoded struct field.
type field struct {
	name      string // the key on the wire
	offset    uintptr
	plan      *plan
	omitEmpty bool
	typ       reflect.Type
}

var (
	plans   sync.Map // reflect.Type → *plan (immutable once stored)
	buildMu sync.Mutex
)

// planFor returns t's plan, building it (and the plans it needs) once.
func planFor(t reflect.Type) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	building := map[reflect.Type]*plan{}
	p := buildPlan(t, building)
	for t, bp := range building { // publish whole: recursive types point at each other
		plans.LoadOrStore(t, bp)
	}
	return p
}

// Check reports whether values of type t can be carried: an error names
// the first part that cannot (a chan, a func, an unsafe pointer, a complex
// number, a non-empty interface, a struct with no exported fields).
func Check(t reflect.Type) error { return planFor(t).err }

func unsupported(t reflect.Type, format string, args ...any) *plan {
	p := &plan{t: t, name: TypeName(t), err: fmt.Errorf(format, args...)}
	p.enc = func(e *encState, b []byte, _ unsafe.Pointer) ([]byte, error) { return b, p.err }
	p.dec = func(d *decState, _ unsafe.Pointer) error { return d.errorf("%v", p.err) }
	return p
}

func buildPlan(t reflect.Type, building map[reflect.Type]*plan) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	if p := building[t]; p != nil {
		return p // a recursive type: its functions are filled in below
	}
	p := &plan{t: t, name: TypeName(t)}
	building[t] = p
	fill := func(q *plan) *plan {
		p.enc, p.dec, p.err = q.enc, q.dec, q.err
		return p
	}
	switch {
	case t == timeType:
		p.enc, p.dec = encTime, decTime
		return p
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) ||
		(t.Kind() == reflect.Pointer && t.Elem().Kind() != reflect.Pointer && (t.Implements(unmarshalerType) || t.Implements(resolverType))):
		return fill(customPlan(t))
	}
	switch t.Kind() {
	case reflect.Bool:
		p.enc, p.dec = encBool, decBool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		p.enc, p.dec = intCodec(t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		p.enc, p.dec = uintCodec(t)
	case reflect.Float32:
		p.enc, p.dec = encFloat32, decFloat32
	case reflect.Float64:
		p.enc, p.dec = encFloat64, decFloat64
	case reflect.String:
		p.enc, p.dec = encString, decString
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			p.enc, p.dec = encBytes, decBytes
			break
		}
		ep := buildPlan(t.Elem(), building)
		if ep.err != nil {
			return fill(unsupported(t, "%s: element: %v", p.name, ep.err))
		}
		p.enc, p.dec = sliceCodec(t, ep)
	case reflect.Array:
		ep := buildPlan(t.Elem(), building)
		if ep.err != nil {
			return fill(unsupported(t, "%s: element: %v", p.name, ep.err))
		}
		p.enc, p.dec = arrayCodec(t, ep)
	case reflect.Map:
		kp, vp := buildPlan(t.Key(), building), buildPlan(t.Elem(), building)
		switch {
		case kp.err != nil:
			return fill(unsupported(t, "%s: key: %v", p.name, kp.err))
		case vp.err != nil:
			return fill(unsupported(t, "%s: value: %v", p.name, vp.err))
		}
		p.enc, p.dec = mapCodec(t, kp, vp)
	case reflect.Pointer:
		ep := buildPlan(t.Elem(), building)
		if ep.err != nil {
			return fill(unsupported(t, "%v", ep.err))
		}
		p.enc, p.dec = pointerCodec(t, ep)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return fill(unsupported(t, "%s is an interface with methods: only any (interface{}) can be decoded", p.name))
		}
		p.enc, p.dec = encAny, decAny
	case reflect.Struct:
		fields, err := structFields(t, building)
		if err != nil {
			return fill(unsupported(t, "%v", err))
		}
		p.enc, p.dec = structCodec(t, fields)
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return fill(unsupported(t, "%s cannot be sent: a %s has no value representation", p.name, t.Kind()))
	case reflect.Complex64, reflect.Complex128:
		return fill(unsupported(t, "%s cannot be sent: complex numbers have no msgpack representation", p.name))
	default:
		return fill(unsupported(t, "%s cannot be sent", p.name))
	}
	return p
}

// structFields lists the encoded fields of a struct type: exported
// fields, named by their msgpack tag, else their json tag, else the Go
// name; "-" skips a field, ",omitempty" leaves a zero value out. Fields
// of embedded structs without a tag are promoted, as encoding/json does.
func structFields(t reflect.Type, building map[reflect.Type]*plan) ([]field, error) {
	type cand struct {
		field
		depth int
	}
	var cands []cand
	var walk func(t reflect.Type, base uintptr, depth int) error
	walk = func(t reflect.Type, base uintptr, depth int) error {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			name, omit, skip := fieldName(sf)
			if skip {
				continue
			}
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct && sf.Type != timeType &&
				!reflect.PointerTo(sf.Type).Implements(unmarshalerType) && !sf.Type.Implements(marshalerType) {
				if err := walk(sf.Type, base+sf.Offset, depth+1); err != nil {
					return err
				}
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			fp := buildPlan(sf.Type, building)
			if fp.err != nil {
				return fmt.Errorf("%s: field %s: %v", TypeName(t), sf.Name, fp.err)
			}
			cands = append(cands, cand{field{name: name, offset: base + sf.Offset, plan: fp, omitEmpty: omit, typ: sf.Type}, depth})
		}
		return nil
	}
	if err := walk(t, 0, 0); err != nil {
		return nil, err
	}
	// Per name the shallowest field wins (encoding/json's rule), the first
	// of equally deep ones.
	best := map[string]int{}
	for i, c := range cands {
		if j, ok := best[c.name]; !ok || c.depth < cands[j].depth {
			best[c.name] = i
		}
	}
	var out []field
	for i, c := range cands {
		if best[c.name] == i {
			out = append(out, c.field)
		}
	}
	if len(out) == 0 && t.NumField() > 0 {
		if pt := reflect.PointerTo(t); pt.Implements(marshalerType) || pt.Implements(resolverType) {
			return nil, fmt.Errorf("%s is encoded by its pointer: use *%s", TypeName(t), TypeName(t))
		}
		return nil, fmt.Errorf("%s has no exported fields: nothing of it would be sent (export the fields, or tag them)", TypeName(t))
	}
	return out, nil
}

func fieldName(sf reflect.StructField) (name string, omitEmpty, skip bool) {
	tag, ok := sf.Tag.Lookup("msgpack")
	if !ok {
		tag, ok = sf.Tag.Lookup("json")
	}
	if !ok {
		return "", false, false
	}
	if tag == "-" {
		return "", false, true
	}
	name, opts, _ := strings.Cut(tag, ",")
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == "omitempty" || o == "omitzero" {
			omitEmpty = true
		}
	}
	return name, omitEmpty, false
}

// TypeName names a Go type for introspection: "bytes" for []byte, "any"
// for interfaces, otherwise the Go spelling.
func TypeName(t reflect.Type) string {
	switch {
	case t == nil:
		return "nil"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "bytes"
	case t.Kind() == reflect.Interface && t.NumMethod() == 0:
		return "any"
	}
	return t.String()
}
