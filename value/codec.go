package value

import (
	"fmt"
	"reflect"
	"sync"
	"unsafe"

	"github.com/shamaton/msgpack/v2"
)

// Codec encodes and decodes values of one Go type. The choice between a
// hand-written fast path and the reflective fallback is made once, when the
// codec is built, not per call. Values pass by value and the decoder takes
// no pointer it could leak, so a fast-path round trip allocates only what
// the value itself needs.
type Codec[T any] struct {
	enc  func(b []byte, v T) ([]byte, error)
	dec  func(b []byte, off int, lim Limits) (T, int, error)
	name string
}

// Append encodes v after b.
func (c *Codec[T]) Append(b []byte, v T) ([]byte, error) { return c.enc(b, v) }

// Decode reads one value from r. On a type mismatch the error names the
// expected type and the byte offset.
func (c *Codec[T]) Decode(r *Reader) (T, error) {
	v, off, err := c.dec(r.b, r.off, r.lim)
	r.off = off
	return v, err
}

// TypeName is the type's name as introspection shows it ("int", "string",
// "bytes", or the Go type's name).
func (c *Codec[T]) TypeName() string { return c.name }

// codecs caches one codec per type: codecs are immutable, so sharing them
// is safe and saves rebuilding closures on every call.
var codecs sync.Map // reflect.Type → *Codec[T]

// For returns the codec for T.
func For[T any]() *Codec[T] {
	t := reflect.TypeFor[T]()
	if c, ok := codecs.Load(t); ok {
		return c.(*Codec[T])
	}
	c, _ := codecs.LoadOrStore(t, build[T](t))
	return c.(*Codec[T])
}

// as reinterprets a value whose dynamic type was checked when the codec was
// built; it avoids boxing the value in an interface on every call.
func as[X, T any](v *T) *X { return (*X)(unsafe.Pointer(v)) }

// scalar builds a fast-path codec for a type with a fixed reader.
func scalar[X, T any](c *Codec[T], enc func([]byte, X) []byte, read func(*Reader) (X, error)) {
	c.enc = func(b []byte, v T) ([]byte, error) { return enc(b, *as[X](&v)), nil }
	c.dec = func(b []byte, off int, lim Limits) (T, int, error) {
		r := Reader{b: b, off: off, lim: lim}
		x, err := read(&r)
		return *as[T](&x), r.off, err
	}
}

func build[T any](t reflect.Type) *Codec[T] {
	c := &Codec[T]{name: TypeName(t)}
	var zero *T
	switch any(zero).(type) {
	case *int:
		scalar(c, func(b []byte, x int) []byte { return AppendInt(b, int64(x)) }, readSigned[int])
	case *int64:
		scalar(c, AppendInt, readSigned[int64])
	case *int32:
		scalar(c, func(b []byte, x int32) []byte { return AppendInt(b, int64(x)) }, readSigned[int32])
	case *uint:
		scalar(c, func(b []byte, x uint) []byte { return AppendUint(b, uint64(x)) }, readUnsigned[uint])
	case *uint64:
		scalar(c, AppendUint, readUnsigned[uint64])
	case *uint32:
		scalar(c, func(b []byte, x uint32) []byte { return AppendUint(b, uint64(x)) }, readUnsigned[uint32])
	case *float64:
		scalar(c, AppendFloat64, (*Reader).ReadFloat)
	case *bool:
		scalar(c, AppendBool, (*Reader).ReadBool)
	case *string:
		scalar(c, AppendString, (*Reader).ReadString)
	case *[]byte:
		scalar(c, func(b []byte, p []byte) []byte {
			if p == nil {
				return AppendNil(b)
			}
			return AppendBytes(b, p)
		}, (*Reader).ReadBytes)
	case *any:
		c.enc = func(b []byte, v T) ([]byte, error) { return AppendAny(b, *as[any](&v)) }
		c.dec = func(b []byte, off int, lim Limits) (T, int, error) {
			r := Reader{b: b, off: off, lim: lim}
			x, err := r.ReadAny()
			return *as[T](&x), r.off, err
		}
	default:
		elem := maxElemSize(t, map[reflect.Type]bool{})
		c.enc = func(b []byte, v T) (out []byte, err error) {
			defer func() {
				if r := recover(); r != nil { // the reflective encoder panics on some inputs
					out, err = b, fmt.Errorf("encoding %s: %v", c.name, r)
				}
			}()
			p, err := msgpack.Marshal(v)
			if err != nil {
				return b, fmt.Errorf("encoding %s: %w", c.name, err)
			}
			return append(b, p...), nil
		}
		c.dec = func(b []byte, off int, lim Limits) (v T, end int, err error) {
			r := Reader{b: b, off: off, lim: lim}
			raw, err := r.Skip()
			if err != nil {
				return v, off, err
			}
			// The reflective decoder sizes slices by the counts it reads;
			// each element costs at least a byte on the wire but up to
			// elem bytes in memory, so bound the product before decoding.
			if elem > 16 {
				if n := claimedElements(raw); n*elem > MaxDecodeBytes {
					return v, off, &Error{Offset: off, Msg: fmt.Sprintf("decoding %s: %d elements of up to %d bytes each exceed the %d-byte decode budget", c.name, n, elem, MaxDecodeBytes)}
				}
			}
			defer func() {
				// The reflective decoder panics on some mismatches (a string
				// where a slice is expected); that is bad input, not a crash.
				if p := recover(); p != nil {
					var zero T
					v, end, err = zero, off, &Error{Offset: off, Msg: fmt.Sprintf("expected %s, got %s", c.name, kindOf(b[off]))}
				}
			}()
			if err := msgpack.Unmarshal(raw, &v); err != nil {
				return v, off, &Error{Offset: off, Msg: fmt.Sprintf("expected %s: %v", c.name, err)}
			}
			return v, r.off, nil
		}
	}
	return c
}

type signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}
type unsigned interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

func readSigned[I signed](r *Reader) (I, error) {
	start := r.off
	x, err := r.ReadInt()
	if err != nil {
		return 0, err
	}
	if int64(I(x)) != x {
		r.off = start
		return 0, r.errorf("integer %d overflows %s", x, reflect.TypeFor[I]())
	}
	return I(x), nil
}

func readUnsigned[I unsigned](r *Reader) (I, error) {
	start := r.off
	x, err := r.ReadUint()
	if err != nil {
		return 0, err
	}
	if uint64(I(x)) != x {
		r.off = start
		return 0, r.errorf("integer %d overflows %s", x, reflect.TypeFor[I]())
	}
	return I(x), nil
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

// MaxDecodeBytes bounds what decoding one value into a Go type may
// allocate for slices and maps whose sizes come from the input.
const MaxDecodeBytes = 256 << 20

// maxElemSize is the largest element size of any slice, array or map
// reachable in t (0 when there is none).
func maxElemSize(t reflect.Type, seen map[reflect.Type]bool) int {
	if seen[t] {
		return 0
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer:
		return maxElemSize(t.Elem(), seen)
	case reflect.Slice, reflect.Array:
		return max(int(t.Elem().Size()), maxElemSize(t.Elem(), seen))
	case reflect.Map:
		return max(int(t.Key().Size()+t.Elem().Size()), maxElemSize(t.Key(), seen), maxElemSize(t.Elem(), seen))
	case reflect.Struct:
		m := 0
		for i := 0; i < t.NumField(); i++ {
			m = max(m, maxElemSize(t.Field(i).Type, seen))
		}
		return m
	}
	return 0
}

// claimedElements sums the element counts of every array and map in an
// encoded value (already checked by Skip).
func claimedElements(raw []byte) int {
	r := NewReader(raw)
	total := 0
	var walk func(depth int) bool
	walk = func(depth int) bool {
		if depth > r.lim.MaxDepth || r.off >= len(r.b) {
			return false
		}
		switch kindOf(r.b[r.off]) {
		case KindArray:
			n, err := r.ReadArrayHeader()
			if err != nil {
				return false
			}
			total += n
			for i := 0; i < n; i++ {
				if !walk(depth + 1) {
					return false
				}
			}
			return true
		case KindMap:
			n, err := r.ReadMapHeader()
			if err != nil {
				return false
			}
			total += n
			for i := 0; i < 2*n; i++ {
				if !walk(depth + 1) {
					return false
				}
			}
			return true
		}
		_, err := r.Skip()
		return err == nil
	}
	walk(0)
	return total
}
