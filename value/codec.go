package value

import (
	"fmt"
	"reflect"

	"github.com/shamaton/msgpack/v2"
)

// Codec encodes and decodes values of one Go type. Build it once (For) and
// reuse it: the choice between a hand-written fast path and the reflective
// fallback is made then, not per call.
type Codec[T any] struct {
	enc  func(b []byte, v *T) ([]byte, error)
	dec  func(r *Reader, v *T) error
	name string
}

// Append encodes v after b.
func (c *Codec[T]) Append(b []byte, v *T) ([]byte, error) { return c.enc(b, v) }

// Decode reads one value from r into v. On a type mismatch the error names
// the expected Go type and the byte offset.
func (c *Codec[T]) Decode(r *Reader, v *T) error { return c.dec(r, v) }

// TypeName is the type's name as introspection shows it ("int", "string",
// "bytes", or the Go type's name).
func (c *Codec[T]) TypeName() string { return c.name }

// For returns the codec for T.
func For[T any]() *Codec[T] {
	c := &Codec[T]{name: TypeName(reflect.TypeFor[T]())}
	var zero *T
	switch any(zero).(type) {
	case *int:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendInt(b, int64(*any(v).(*int))), nil }
		c.dec = func(r *Reader, v *T) error { return readSigned(r, any(v).(*int)) }
	case *int64:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendInt(b, *any(v).(*int64)), nil }
		c.dec = func(r *Reader, v *T) error { return readSigned(r, any(v).(*int64)) }
	case *int32:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendInt(b, int64(*any(v).(*int32))), nil }
		c.dec = func(r *Reader, v *T) error { return readSigned(r, any(v).(*int32)) }
	case *uint:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendUint(b, uint64(*any(v).(*uint))), nil }
		c.dec = func(r *Reader, v *T) error { return readUnsigned(r, any(v).(*uint)) }
	case *uint64:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendUint(b, *any(v).(*uint64)), nil }
		c.dec = func(r *Reader, v *T) error { return readUnsigned(r, any(v).(*uint64)) }
	case *uint32:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendUint(b, uint64(*any(v).(*uint32))), nil }
		c.dec = func(r *Reader, v *T) error { return readUnsigned(r, any(v).(*uint32)) }
	case *float64:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendFloat64(b, *any(v).(*float64)), nil }
		c.dec = func(r *Reader, v *T) error {
			f, err := r.ReadFloat()
			*any(v).(*float64) = f
			return err
		}
	case *bool:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendBool(b, *any(v).(*bool)), nil }
		c.dec = func(r *Reader, v *T) error {
			x, err := r.ReadBool()
			*any(v).(*bool) = x
			return err
		}
	case *string:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendString(b, *any(v).(*string)), nil }
		c.dec = func(r *Reader, v *T) error {
			s, err := r.ReadString()
			*any(v).(*string) = s
			return err
		}
	case *[]byte:
		c.enc = func(b []byte, v *T) ([]byte, error) {
			p := *any(v).(*[]byte)
			if p == nil {
				return AppendNil(b), nil
			}
			return AppendBytes(b, p), nil
		}
		c.dec = func(r *Reader, v *T) error {
			p, err := r.ReadBytes()
			*any(v).(*[]byte) = p
			return err
		}
	case *any:
		c.enc = func(b []byte, v *T) ([]byte, error) { return AppendAny(b, *any(v).(*any)) }
		c.dec = func(r *Reader, v *T) error {
			x, err := r.ReadAny()
			*any(v).(*any) = x
			return err
		}
	default:
		c.enc = func(b []byte, v *T) ([]byte, error) {
			p, err := msgpack.Marshal(*v)
			if err != nil {
				return b, fmt.Errorf("encoding %s: %w", c.name, err)
			}
			return append(b, p...), nil
		}
		c.dec = func(r *Reader, v *T) error {
			start := r.off
			raw, err := r.Skip()
			if err != nil {
				return err
			}
			if err := msgpack.Unmarshal(raw, v); err != nil {
				return &Error{Offset: start, Msg: fmt.Sprintf("expected %s: %v", c.name, err)}
			}
			return nil
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

func readSigned[I signed](r *Reader, v *I) error {
	start := r.off
	x, err := r.ReadInt()
	if err != nil {
		return err
	}
	if int64(I(x)) != x {
		r.off = start
		return r.errorf("integer %d overflows %T", x, *v)
	}
	*v = I(x)
	return nil
}

func readUnsigned[I unsigned](r *Reader, v *I) error {
	start := r.off
	x, err := r.ReadUint()
	if err != nil {
		return err
	}
	if uint64(I(x)) != x {
		r.off = start
		return r.errorf("integer %d overflows %T", x, *v)
	}
	*v = I(x)
	return nil
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
