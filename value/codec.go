package value

import (
	"reflect"
	"unsafe"

	"github.com/arbor-rpc/arbor/internal/typecache"
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
	err  error // why T cannot be carried (Check)
	// encHost and decHost pass a host to Marshaler and Unmarshaler types
	// inside the value; nil for the plain types, which have none.
	encHost func(b []byte, v T, host any) ([]byte, error)
	decHost func(r *Reader, host any) (T, error)
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

// Err says why values of T cannot be carried (a chan, a func, a struct
// with no exported fields ...), or is nil.
func (c *Codec[T]) Err() error { return c.err }

// AppendHost encodes v after b, passing host to the Marshaler values
// inside it.
func (c *Codec[T]) AppendHost(b []byte, v T, host any) ([]byte, error) {
	if c.encHost == nil {
		return c.enc(b, v)
	}
	return c.encHost(b, v, host)
}

// DecodeHost reads one value from r, passing host to the Unmarshaler
// values inside it.
func (c *Codec[T]) DecodeHost(r *Reader, host any) (T, error) {
	if c.decHost == nil {
		return c.Decode(r)
	}
	return c.decHost(r, host)
}

// codecs caches one codec per type: codecs are immutable, so sharing them
// is safe and saves rebuilding closures on every call.
var codecs typecache.Cache[any] // *Codec[T]

// For returns the codec for T.
func For[T any]() *Codec[T] {
	return codecs.Get(reflect.TypeFor[T](), func(t reflect.Type) any { return build[T](t) }).(*Codec[T])
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
		if selfCodec(c, t) { // selfcodec.go: pointers that encode themselves
			return c
		}
		pl := planFor(t)
		c.err = pl.err
		c.enc = func(b []byte, v T) ([]byte, error) {
			var e encState
			return pl.enc(&e, b, unsafe.Pointer(&v))
		}
		c.dec = func(b []byte, off int, lim Limits) (v T, end int, err error) {
			r := Reader{b: b, off: off, lim: lim}
			d := newDecState(&r, nil)
			if err := pl.dec(&d, unsafe.Pointer(&v)); err != nil {
				var zero T
				return zero, off, err
			}
			return v, r.off, nil
		}
		c.encHost = func(b []byte, v T, host any) ([]byte, error) {
			e := encState{host: host}
			return pl.enc(&e, b, unsafe.Pointer(&v))
		}
		c.decHost = func(r *Reader, host any) (T, error) {
			var v T
			start := r.off
			d := newDecState(r, host)
			if err := pl.dec(&d, unsafe.Pointer(&v)); err != nil {
				r.off = start
				var zero T
				return zero, err
			}
			return v, nil
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

// MaxDecodeBytes bounds what decoding one value into a Go type may
// allocate, whatever Limits.MaxAlloc says.
const MaxDecodeBytes = 256 << 20
