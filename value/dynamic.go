package value

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ReadAny decodes one value into plain Go values: nil, bool, int64, uint64
// (only above MaxInt64), float64, string, []byte, []any and map[string]any
// (non-string keys are formatted as strings). Limits apply, and the values
// made may take at most the allocation budget (Limits.MaxAlloc; by default
// 16 times the input plus 64 KiB): nested containers that each claim the
// rest of the input cannot multiply it.
func (r *Reader) ReadAny() (any, error) {
	budget := r.lim.MaxAlloc
	if budget <= 0 {
		budget = min(int64(len(r.b)-r.off)*allocRatio+allocFloor, MaxDecodeBytes)
	}
	return r.readAny(0, &budget)
}

// charge takes n bytes from the budget of a ReadAny.
func (r *Reader) charge(budget *int64, n int64) error {
	if n > *budget {
		return r.errorf("decoding would allocate more than the budget for a %d-byte input (see value.Limits.MaxAlloc)", len(r.b))
	}
	*budget -= n
	return nil
}

func (r *Reader) readAny(depth int, budget *int64) (any, error) {
	if depth > r.lim.MaxDepth {
		return nil, r.errorf("nesting deeper than %d", r.lim.MaxDepth)
	}
	if r.off >= len(r.b) {
		return nil, r.errorf("expected a value, got end of input")
	}
	c := r.b[r.off]
	switch kindOf(c) {
	case KindNil:
		r.off++
		return nil, nil
	case KindBool:
		return r.ReadBool()
	case KindInt:
		return r.ReadInt()
	case KindUint:
		if c == 0xcf {
			u, err := r.ReadUint()
			if err == nil && u <= math.MaxInt64 {
				return int64(u), nil
			}
			return u, err
		}
		return r.ReadInt()
	case KindFloat:
		return r.ReadFloat()
	case KindString:
		return r.ReadString()
	case KindBytes:
		return r.ReadBytes()
	case KindArray:
		n, err := r.ReadArrayHeader()
		if err != nil {
			return nil, err
		}
		if err := r.charge(budget, 16*int64(n)); err != nil {
			return nil, err
		}
		out := make([]any, n) // n is bounded by the bytes left and the budget
		for i := range out {
			if out[i], err = r.readAny(depth+1, budget); err != nil {
				return nil, err
			}
		}
		return out, nil
	case KindMap:
		n, err := r.ReadMapHeader()
		if err != nil {
			return nil, err
		}
		if err := r.charge(budget, 64*int64(n)); err != nil {
			return nil, err
		}
		out := make(map[string]any, n)
		for i := 0; i < n; i++ {
			k, err := r.readAny(depth+1, budget)
			if err != nil {
				return nil, err
			}
			ks, ok := k.(string)
			if !ok {
				ks = fmt.Sprint(k)
			}
			if out[ks], err = r.readAny(depth+1, budget); err != nil {
				return nil, err
			}
		}
		return out, nil
	case KindExt:
		start := r.off
		t, _, err := r.ReadExt()
		if err != nil {
			return nil, err
		}
		if t == TimestampExt {
			r.off = start
			return r.ReadTime()
		}
		return nil, &Error{Offset: start, Msg: fmt.Sprintf("msgpack extension type %d has no plain value", t)}
	}
	return nil, r.errorf("invalid msgpack type byte 0x%02x", c)
}

// AppendAny encodes a plain Go value: what ReadAny returns, what
// encoding/json decodes into (including json.Number), other integer and
// float types, and []byte. Other types go through the reflective encoder.
func AppendAny(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return AppendNil(b), nil
	case bool:
		return AppendBool(b, x), nil
	case int:
		return AppendInt(b, int64(x)), nil
	case int64:
		return AppendInt(b, x), nil
	case int32:
		return AppendInt(b, int64(x)), nil
	case uint64:
		return AppendUint(b, x), nil
	case uint:
		return AppendUint(b, uint64(x)), nil
	case float64:
		return AppendFloat64(b, x), nil
	case float32:
		return AppendFloat32(b, x), nil
	case string:
		return AppendString(b, x), nil
	case []byte:
		return AppendBytes(b, x), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return AppendInt(b, i), nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return AppendUint(b, u), nil
		}
		f, err := x.Float64()
		if err != nil {
			return b, fmt.Errorf("number %q: %w", x, err)
		}
		return AppendFloat64(b, f), nil
	case []any:
		b = AppendArrayHeader(b, len(x))
		for i, e := range x {
			var err error
			if b, err = AppendAny(b, e); err != nil {
				return b, fmt.Errorf("[%d]: %w", i, err)
			}
		}
		return b, nil
	case map[string]any:
		// Keys sorted by their encoding, as the map plan sorts them, so
		// that equal maps encode to equal bytes: a str header grows with
		// the length, so that is by length, then by bytes.
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int {
			if c := cmp.Compare(len(a), len(b)); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		b = AppendMapHeader(b, len(x))
		for _, k := range keys {
			b = AppendString(b, k)
			var err error
			if b, err = AppendAny(b, x[k]); err != nil {
				return b, fmt.Errorf("%s: %w", k, err)
			}
		}
		return b, nil
	}
	var e encState
	return appendValue(&e, b, v)
}
