package value

import (
	"encoding/binary"
	"time"
	"unsafe"
)

// TimestampExt is msgpack's timestamp extension type, used for time.Time.
const TimestampExt int8 = -1

// AppendTime appends t as a msgpack timestamp, in the shortest of its
// three forms.
func AppendTime(b []byte, t time.Time) []byte {
	sec, nsec := t.Unix(), uint32(t.Nanosecond())
	switch {
	case sec >= 0 && sec < 1<<34 && nsec == 0 && sec < 1<<32:
		return AppendExt(b, TimestampExt, binary.BigEndian.AppendUint32(nil, uint32(sec)))
	case sec >= 0 && sec < 1<<34:
		return AppendExt(b, TimestampExt, binary.BigEndian.AppendUint64(nil, uint64(nsec)<<34|uint64(sec)))
	}
	data := binary.BigEndian.AppendUint32(make([]byte, 0, 12), nsec)
	return AppendExt(b, TimestampExt, binary.BigEndian.AppendUint64(data, uint64(sec)))
}

// ReadTime reads a msgpack timestamp, or an RFC 3339 string (what JSON
// callers send), as a time.Time in UTC.
func (r *Reader) ReadTime() (time.Time, error) {
	if r.PeekKind() == KindString {
		start := r.off
		s, err := r.ReadString()
		if err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			r.off = start
			return time.Time{}, r.errorf("expected time.Time, got the string %q (want RFC 3339)", truncate(s))
		}
		return t.UTC(), nil
	}
	start := r.off
	typ, data, err := r.ReadExt()
	if err != nil {
		if r.PeekKind() == KindNil {
			return time.Time{}, r.errorf("expected time.Time, got nil")
		}
		return time.Time{}, r.mismatch("time.Time")
	}
	if typ != TimestampExt {
		r.off = start
		return time.Time{}, r.errorf("expected time.Time, got extension type %d", typ)
	}
	switch len(data) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(data)), 0).UTC(), nil
	case 8:
		v := binary.BigEndian.Uint64(data)
		nsec := v >> 34
		if nsec > 999999999 {
			break
		}
		return time.Unix(int64(v&(1<<34-1)), int64(nsec)).UTC(), nil
	case 12:
		nsec := binary.BigEndian.Uint32(data)
		if nsec > 999999999 {
			break
		}
		return time.Unix(int64(binary.BigEndian.Uint64(data[4:])), int64(nsec)).UTC(), nil
	}
	r.off = start
	return time.Time{}, r.errorf("malformed timestamp of %d bytes", len(data))
}

func encTime(_ *encState, b []byte, p unsafe.Pointer) ([]byte, error) {
	return AppendTime(b, *(*time.Time)(p)), nil
}

func decTime(d *decState, p unsafe.Pointer) error {
	t, err := d.r.ReadTime()
	if err != nil {
		return err
	}
	*(*time.Time)(p) = t
	return nil
}
