package value

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"unsafe"
)

// encState is what one encoding carries down: the host (for Marshaler
// types) and the nesting depth (a cyclic value must not recurse forever).
type encState struct {
	host  any
	depth int
}

// maxEncodeDepth matches the decoders' default nesting limit, so what
// encodes also decodes.
const maxEncodeDepth = 64

func (e *encState) enter(name string) error {
	e.depth++
	if e.depth > maxEncodeDepth {
		return fmt.Errorf("encoding %s: nesting deeper than %d (a cyclic value?)", name, maxEncodeDepth)
	}
	return nil
}

func encBool(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	return AppendBool(b, *(*bool)(p)), nil
}

func intCodec(t reflect.Type) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	bits := t.Bits()
	enc := func(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		var v int64
		switch bits {
		case 8:
			v = int64(*(*int8)(p))
		case 16:
			v = int64(*(*int16)(p))
		case 32:
			v = int64(*(*int32)(p))
		default:
			v = *(*int64)(p)
		}
		return AppendInt(b, v), nil
	}
	name := TypeName(t)
	dec := func(d *decState, p unsafe.Pointer) error {
		start := d.r.off
		v, err := d.r.ReadInt()
		if err != nil {
			return d.wrap(err, name)
		}
		if bits < 64 && (v < -1<<(bits-1) || v > 1<<(bits-1)-1) {
			d.r.off = start
			return d.errorf("integer %d overflows %s", v, name)
		}
		switch bits {
		case 8:
			*(*int8)(p) = int8(v)
		case 16:
			*(*int16)(p) = int16(v)
		case 32:
			*(*int32)(p) = int32(v)
		default:
			*(*int64)(p) = v
		}
		return nil
	}
	return enc, dec
}

func uintCodec(t reflect.Type) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	bits := t.Bits()
	enc := func(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		var v uint64
		switch bits {
		case 8:
			v = uint64(*(*uint8)(p))
		case 16:
			v = uint64(*(*uint16)(p))
		case 32:
			v = uint64(*(*uint32)(p))
		default:
			v = *(*uint64)(p)
		}
		return AppendUint(b, v), nil
	}
	name := TypeName(t)
	dec := func(d *decState, p unsafe.Pointer) error {
		start := d.r.off
		v, err := d.r.ReadUint()
		if err != nil {
			return d.wrap(err, name)
		}
		if bits < 64 && v > 1<<bits-1 {
			d.r.off = start
			return d.errorf("integer %d overflows %s", v, name)
		}
		switch bits {
		case 8:
			*(*uint8)(p) = uint8(v)
		case 16:
			*(*uint16)(p) = uint16(v)
		case 32:
			*(*uint32)(p) = uint32(v)
		default:
			*(*uint64)(p) = v
		}
		return nil
	}
	return enc, dec
}

func encFloat32(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	return AppendFloat32(b, *(*float32)(p)), nil
}

func encFloat64(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	return AppendFloat64(b, *(*float64)(p)), nil
}

func encString(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	return AppendString(b, *(*string)(p)), nil
}

func encBytes(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	v := *(*[]byte)(p)
	if v == nil {
		return AppendNil(b), nil
	}
	return AppendBytes(b, v), nil
}

func sliceCodec(t reflect.Type, ep *plan) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	size := t.Elem().Size()
	enc := func(e *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		h := (*sliceHeader)(p)
		if h.data == nil {
			return AppendNil(b), nil
		}
		if err := e.enter(ep.name); err != nil {
			return b, err
		}
		defer func() { e.depth-- }()
		b = AppendArrayHeader(b, h.len)
		var err error
		for i := 0; i < h.len; i++ {
			if b, err = ep.enc(e, b, unsafe.Add(h.data, uintptr(i)*size)); err != nil {
				return b, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return b, nil
	}
	dec := func(d *decState, p unsafe.Pointer) error {
		if d.r.ReadNil() {
			*(*sliceHeader)(p) = sliceHeader{}
			return nil
		}
		n, err := d.r.ReadArrayHeader()
		if err != nil {
			return d.wrap(err, TypeName(t))
		}
		if err := d.alloc(n, size); err != nil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		defer d.leave()
		v := reflect.MakeSlice(t, n, n)
		data := v.UnsafePointer()
		for i := 0; i < n; i++ {
			if err := ep.dec(d, unsafe.Add(data, uintptr(i)*size)); err != nil {
				return d.in(err, "element %d", i)
			}
		}
		*(*sliceHeader)(p) = sliceHeader{data: data, len: n, cap: n}
		return nil
	}
	return enc, dec
}

// sliceHeader is the runtime layout of a slice.
type sliceHeader struct {
	data unsafe.Pointer
	len  int
	cap  int
}

func arrayCodec(t reflect.Type, ep *plan) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	size, n := t.Elem().Size(), t.Len()
	isBytes := t.Elem().Kind() == reflect.Uint8
	enc := func(e *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		if isBytes { // [N]byte travels as bin, like []byte
			return AppendBytes(b, unsafe.Slice((*byte)(p), n)), nil
		}
		if err := e.enter(ep.name); err != nil {
			return b, err
		}
		defer func() { e.depth-- }()
		b = AppendArrayHeader(b, n)
		var err error
		for i := 0; i < n; i++ {
			if b, err = ep.enc(e, b, unsafe.Add(p, uintptr(i)*size)); err != nil {
				return b, fmt.Errorf("element %d: %w", i, err)
			}
		}
		return b, nil
	}
	name := TypeName(t)
	dec := func(d *decState, p unsafe.Pointer) error {
		if isBytes && (d.r.PeekKind() == KindBytes || d.r.PeekKind() == KindString) {
			src, err := d.r.ReadStringBytes()
			if err != nil {
				return d.wrap(err, name)
			}
			if len(src) != n {
				return d.errorf("expected %s, got %d bytes", name, len(src))
			}
			copy(unsafe.Slice((*byte)(p), n), src)
			return nil
		}
		start := d.r.off
		m, err := d.r.ReadArrayHeader()
		if err != nil {
			return d.wrap(err, name)
		}
		if m != n {
			d.r.off = start
			return d.errorf("expected %s, got an array of %d elements", name, m)
		}
		if err := d.enter(); err != nil {
			return err
		}
		defer d.leave()
		for i := 0; i < n; i++ {
			if err := ep.dec(d, unsafe.Add(p, uintptr(i)*size)); err != nil {
				return d.in(err, "element %d", i)
			}
		}
		return nil
	}
	return enc, dec
}

func mapCodec(t reflect.Type, kp, vp *plan) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	name := TypeName(t)
	enc := func(e *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		m := reflect.NewAt(t, p).Elem()
		if m.IsNil() {
			return AppendNil(b), nil
		}
		if err := e.enter(name); err != nil {
			return b, err
		}
		defer func() { e.depth-- }()
		// Keys are sorted by their encoding, so equal maps encode equally
		// (content keys and caches depend on it).
		type entry struct{ k, v []byte }
		entries := make([]entry, 0, m.Len())
		it := m.MapRange()
		kv, vv := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
		for it.Next() {
			kv.SetIterKey(it)
			vv.SetIterValue(it)
			kb, err := kp.enc(e, nil, kv.Addr().UnsafePointer())
			if err != nil {
				return b, fmt.Errorf("key: %w", err)
			}
			vb, err := vp.enc(e, nil, vv.Addr().UnsafePointer())
			if err != nil {
				return b, fmt.Errorf("value of key %s: %w", describeKey(kb), err)
			}
			entries = append(entries, entry{kb, vb})
		}
		slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.k, b.k) })
		b = AppendMapHeader(b, len(entries))
		for _, en := range entries {
			b = append(append(b, en.k...), en.v...)
		}
		return b, nil
	}
	kt, vt := t.Key(), t.Elem()
	dec := func(d *decState, p unsafe.Pointer) error {
		if d.r.ReadNil() {
			reflect.NewAt(t, p).Elem().SetZero()
			return nil
		}
		n, err := d.r.ReadMapHeader()
		if err != nil {
			return d.wrap(err, name)
		}
		if err := d.alloc(n, kt.Size()+vt.Size()+8); err != nil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		defer d.leave()
		m := reflect.MakeMapWithSize(t, n)
		kv, vv := reflect.New(kt).Elem(), reflect.New(vt).Elem()
		for i := 0; i < n; i++ {
			kv.SetZero()
			if err := decodeKey(d, kp, kv); err != nil {
				return d.in(err, "key %d", i)
			}
			vv.SetZero()
			if err := vp.dec(d, vv.Addr().UnsafePointer()); err != nil {
				return d.in(err, "key %s", truncate(fmt.Sprint(kv.Interface())))
			}
			m.SetMapIndex(kv, vv)
		}
		reflect.NewAt(t, p).Elem().Set(m)
		return nil
	}
	return enc, dec
}

func describeKey(kb []byte) string {
	r := NewReader(kb)
	if v, err := r.ReadAny(); err == nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	return "?"
}

func pointerCodec(t reflect.Type, ep *plan) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	et := t.Elem()
	enc := func(e *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			return AppendNil(b), nil
		}
		if err := e.enter(ep.name); err != nil {
			return b, err
		}
		defer func() { e.depth-- }()
		return ep.enc(e, b, q)
	}
	dec := func(d *decState, p unsafe.Pointer) error {
		if d.r.ReadNil() {
			*(*unsafe.Pointer)(p) = nil
			return nil
		}
		if err := d.alloc(1, et.Size()); err != nil {
			return err
		}
		if err := d.enter(); err != nil {
			return err
		}
		defer d.leave()
		q := *(*unsafe.Pointer)(p)
		if q == nil {
			q = reflect.New(et).UnsafePointer()
		}
		if err := ep.dec(d, q); err != nil {
			return err
		}
		*(*unsafe.Pointer)(p) = q
		return nil
	}
	return enc, dec
}

func encAny(e *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	v := *(*any)(p)
	if v == nil {
		return AppendNil(b), nil
	}
	return appendValue(e, b, v)
}

// appendValue encodes v of any type through its plan (fast for the
// plain types ReadAny produces).
func appendValue(e *encState, b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return AppendNil(b), nil
	case bool:
		return AppendBool(b, x), nil
	case int:
		return AppendInt(b, int64(x)), nil
	case int64:
		return AppendInt(b, x), nil
	case uint64:
		return AppendUint(b, x), nil
	case float64:
		return AppendFloat64(b, x), nil
	case string:
		return AppendString(b, x), nil
	case []byte:
		return AppendBytes(b, x), nil
	}
	rv := reflect.ValueOf(v)
	pl := planFor(rv.Type())
	if pl.err != nil {
		return b, pl.err
	}
	if err := e.enter(pl.name); err != nil {
		return b, err
	}
	defer func() { e.depth-- }()
	// The plan wants a pointer to the value: copy it into a new variable.
	ptr := reflect.New(rv.Type())
	ptr.Elem().Set(rv)
	return pl.enc(e, b, ptr.UnsafePointer())
}

func structCodec(t reflect.Type, fields []field) (func(*encState, []byte, unsafe.Pointer) ([]byte, error), func(*decState, unsafe.Pointer) error) {
	name := TypeName(t)
	anyOmit := false
	for _, f := range fields {
		anyOmit = anyOmit || f.omitEmpty
	}
	enc := func(e *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
		if err := e.enter(name); err != nil {
			return b, err
		}
		defer func() { e.depth-- }()
		n := len(fields)
		if anyOmit {
			n = 0
			for i := range fields {
				if !fields[i].omitEmpty || !isZero(fields[i].typ, unsafe.Add(p, fields[i].offset)) {
					n++
				}
			}
		}
		b = AppendMapHeader(b, n)
		var err error
		for i := range fields {
			f := &fields[i]
			fp := unsafe.Add(p, f.offset)
			if f.omitEmpty && isZero(f.typ, fp) {
				continue
			}
			b = AppendString(b, f.name)
			if b, err = f.plan.enc(e, b, fp); err != nil {
				return b, fmt.Errorf("field %s: %w", f.name, err)
			}
		}
		return b, nil
	}
	// Field lookup: exact names first, then case-insensitively (as
	// encoding/json matches keys), so JSON written by hand decodes.
	index := make(map[string]int, len(fields))
	for i, f := range fields {
		index[f.name] = i
	}
	dec := func(d *decState, p unsafe.Pointer) error {
		if d.r.PeekKind() == KindNil {
			return d.errorf("expected %s, got nil", name)
		}
		n, err := d.r.ReadMapHeader()
		if err != nil {
			return d.wrap(err, name)
		}
		if err := d.enter(); err != nil {
			return err
		}
		defer d.leave()
		for i := 0; i < n; i++ {
			if d.r.PeekKind() != KindString && d.r.PeekKind() != KindBytes {
				if _, err := d.r.Skip(); err != nil { // a non-string key names no field
					return d.wrap(err, name)
				}
				if _, err := d.r.Skip(); err != nil {
					return d.wrap(err, name)
				}
				continue
			}
			k, err := d.r.ReadStringBytes()
			if err != nil {
				return d.wrap(err, name)
			}
			fi, ok := index[string(k)]
			if !ok {
				fi = -1
				for j := range fields {
					if equalFold(fields[j].name, k) {
						fi = j
						break
					}
				}
			}
			if fi < 0 { // unknown fields are skipped: old and new peers interoperate
				if _, err := d.r.Skip(); err != nil {
					return d.wrap(err, name)
				}
				continue
			}
			f := &fields[fi]
			if err := f.plan.dec(d, unsafe.Add(p, f.offset)); err != nil {
				return d.in(err, "field %s", f.name)
			}
		}
		return nil
	}
	return enc, dec
}

// equalFold is strings.EqualFold for a []byte without converting it.
func equalFold(s string, b []byte) bool {
	if len(s) != len(b) {
		// Case folding can change byte lengths only outside ASCII; field
		// names are nearly always ASCII, so compare as strings then.
		return len(b) < 256 && stringsEqualFold(s, string(b))
	}
	for i := 0; i < len(s); i++ {
		c1, c2 := s[i], b[i]
		if c1 == c2 {
			continue
		}
		if c1|0x20 != c2|0x20 || (c1|0x20) < 'a' || (c1|0x20) > 'z' {
			if c1 >= 0x80 || c2 >= 0x80 {
				return stringsEqualFold(s, string(b))
			}
			return false
		}
	}
	return true
}

// isZero reports whether the value at p of type t is its zero value.
func isZero(t reflect.Type, p unsafe.Pointer) bool {
	switch t.Kind() {
	case reflect.Bool:
		return !*(*bool)(p)
	case reflect.String:
		return *(*string)(p) == ""
	case reflect.Slice:
		return (*sliceHeader)(p).len == 0
	case reflect.Pointer, reflect.Map:
		return *(*unsafe.Pointer)(p) == nil
	case reflect.Float64:
		return math.Float64bits(*(*float64)(p)) == 0
	}
	return reflect.NewAt(t, p).Elem().IsZero()
}

func customPlan(t reflect.Type) *plan {
	p := &plan{t: t, name: TypeName(t)}
	canEnc := t.Implements(marshalerType)
	canDec := reflect.PointerTo(t).Implements(unmarshalerType)
	ptrDec := t.Kind() == reflect.Pointer && t.Implements(unmarshalerType)
	resolves := t.Kind() == reflect.Pointer && t.Implements(resolverType)
	p.enc = func(e *encState, b []byte, ptr unsafe.Pointer) ([]byte, error) {
		if !canEnc {
			return b, fmt.Errorf("%s cannot be encoded", p.name)
		}
		if t.Kind() == reflect.Pointer && *(*unsafe.Pointer)(ptr) == nil {
			return AppendNil(b), nil
		}
		m := reflect.NewAt(t, ptr).Elem().Interface().(Marshaler)
		return m.AppendMsgpack(b, e.host)
	}
	p.dec = func(d *decState, ptr unsafe.Pointer) error {
		switch {
		case resolves: // a handle: the input names an existing object
			if d.r.PeekKind() == KindNil {
				d.r.ReadNil()
				*(*unsafe.Pointer)(ptr) = nil
				return nil
			}
			v, err := reflect.Zero(t).Interface().(Resolver).ResolveMsgpack(d.r, d.host)
			if err != nil {
				return d.wrap(err, p.name)
			}
			rv := reflect.ValueOf(v)
			if rv.Type() != t {
				return d.errorf("%s resolved to a %T", p.name, v)
			}
			*(*unsafe.Pointer)(ptr) = rv.UnsafePointer()
			return nil
		case ptrDec: // *T implements it: make a T and decode into it
			if d.r.PeekKind() == KindNil {
				d.r.ReadNil()
				*(*unsafe.Pointer)(ptr) = nil
				return nil
			}
			v := reflect.New(t.Elem())
			if err := v.Interface().(Unmarshaler).ReadMsgpack(d.r, d.host); err != nil {
				return d.wrap(err, p.name)
			}
			*(*unsafe.Pointer)(ptr) = v.UnsafePointer()
			return nil
		case canDec:
			u := reflect.NewAt(t, ptr).Interface().(Unmarshaler)
			if err := u.ReadMsgpack(d.r, d.host); err != nil {
				return d.wrap(err, p.name)
			}
			return nil
		}
		return d.errorf("%s cannot be decoded", p.name)
	}
	return p
}
