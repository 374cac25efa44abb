package value

import (
	"reflect"
	"sync"
	"unsafe"
)

// A pointer type that encodes and decodes itself (Marshaler, and
// Unmarshaler on the pointer: generated protobuf messages, say) used
// directly as an argument, result or stream message gets a codec of its
// own instead of the reflective plan: encoding calls AppendMsgpack on the
// pointer as is, and decoding hands ReadMsgpack a pooled Reader, so that
// a round trip allocates only what the type's own decoding does (the
// value it decodes into). Types that resolve handles (Resolver) keep the
// plan.

// selfCodec fills c for T if T is such a pointer type, and reports
// whether it did.
func selfCodec[T any](c *Codec[T], t reflect.Type) bool {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() == reflect.Pointer ||
		!t.Implements(marshalerType) || !t.Implements(unmarshalerType) || t.Implements(resolverType) {
		return false
	}
	elem, name := t.Elem(), TypeName(t)
	isNil := func(v *T) bool { return *(*unsafe.Pointer)(unsafe.Pointer(v)) == nil }
	c.enc = func(b []byte, v T) ([]byte, error) {
		if isNil(&v) {
			return AppendNil(b), nil
		}
		return any(v).(Marshaler).AppendMsgpack(b, nil)
	}
	c.encHost = func(b []byte, v T, host any) ([]byte, error) {
		if isNil(&v) {
			return AppendNil(b), nil
		}
		return any(v).(Marshaler).AppendMsgpack(b, host)
	}
	read := func(r *Reader, host any) (T, error) {
		var zero T
		if r.PeekKind() == KindNil {
			r.ReadNil()
			return zero, nil
		}
		start := r.off
		p := reflect.New(elem)
		if err := p.Interface().(Unmarshaler).ReadMsgpack(r, host); err != nil {
			d := decState{r: r}
			r.off = start
			return zero, d.wrap(err, name)
		}
		ptr := p.UnsafePointer()
		return *(*T)(unsafe.Pointer(&ptr)), nil
	}
	c.dec = func(b []byte, off int, lim Limits) (T, int, error) {
		r := readers.Get().(*Reader)
		*r = Reader{b: b, off: off, lim: lim}
		v, err := read(r, nil)
		end := r.off
		*r = Reader{}
		readers.Put(r)
		return v, end, err
	}
	c.decHost = read
	return true
}

// readers are the Readers ReadMsgpack methods get (a Reader passed to an
// interface method escapes: a pooled one costs no allocation).
var readers = sync.Pool{New: func() any { return new(Reader) }}
