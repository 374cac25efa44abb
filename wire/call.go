package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// CALL flags (header byte 5). FlagTarget and FlagPromises are set by
// AppendCall from the frame's fields; the others say what the call is.
const (
	// FlagStream opens a stream: both sides may then send DATA frames with
	// the call's id, END to half-close their direction, and the callee
	// ends the stream with RESULT or ERROR.
	FlagStream uint8 = 1
	// FlagRetain asks the callee to keep the answer after sending it,
	// until a RELEASE frame with the call's id, so that later calls can
	// use it as an argument or target (promise pipelining).
	FlagRetain uint8 = 4
	// FlagTarget says the payload carries a target: the call is a method
	// call on a capability rather than a call of a function by id.
	FlagTarget uint8 = 16
	// FlagPromises says the payload carries a promise table: answers of
	// earlier retained calls that the arguments use (PromiseExt values
	// index into it).
	FlagPromises uint8 = 32
	// FlagCaps on a CALL or RESULT says the payload carries a capability
	// table: the capabilities that the arguments or result hold
	// (CapabilityExt values index into it).
	FlagCaps uint8 = 64
)

// callFlags are the flags a CALL may carry.
const callFlags = FlagStream | FlagRetain | FlagTarget | FlagPromises | FlagCaps

// MaxCaps bounds the capability table of one message.
const MaxCaps = 1 << 10

// CapDescriptor is one entry of a capability table (Cap'n Proto's
// CapDescriptor): which capability a CapabilityExt value in the message
// names.
type CapDescriptor struct {
	Kind uint8 // CapSenderHosted, CapReceiverHosted or CapReceiverAnswer
	ID   uint64
	// Path is, for CapReceiverAnswer, the encoded path (AppendPath) to the
	// capability in the answer; empty: the answer itself.
	Path []byte
}

// AppendCapTable appends a capability table: a count, then per entry its
// kind byte and uvarint id (and for CapReceiverAnswer, its path).
func AppendCapTable(dst []byte, caps []CapDescriptor) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(caps)))
	for _, c := range caps {
		dst = append(dst, c.Kind)
		dst = binary.AppendUvarint(dst, c.ID)
		if c.Kind == CapReceiverAnswer {
			if len(c.Path) == 0 {
				dst = append(dst, 0) // the empty path
			} else {
				dst = append(dst, c.Path...)
			}
		}
	}
	return dst
}

// capTable reads (and with dst non-nil, returns) a capability table.
func (d *decoder) capTable(dst []CapDescriptor, keep bool) ([]CapDescriptor, error) {
	n, err := d.uvarint("capability count")
	if err != nil {
		return dst, err
	}
	if n == 0 || n > MaxCaps {
		return dst, d.errorf("capability count %d out of range (1..%d)", n, MaxCaps)
	}
	for i := uint64(0); i < n; i++ {
		k, err := d.byte1("capability kind")
		if err != nil {
			return dst, err
		}
		if k != CapSenderHosted && k != CapReceiverHosted && k != CapReceiverAnswer {
			return dst, d.errorf("capability kind %d unknown", k)
		}
		id, err := d.uvarint("capability id")
		if err != nil {
			return dst, err
		}
		var path []byte
		if k == CapReceiverAnswer {
			if path, err = d.skipPath(); err != nil {
				return dst, err
			}
			if len(path) == 1 { // the empty path: keep it empty
				path = nil
			}
		}
		if keep {
			dst = append(dst, CapDescriptor{Kind: k, ID: id, Path: path})
		}
	}
	return dst, nil
}

// ParseCapTable decodes a capability table that ParseCall or
// SplitResult has checked, appending to dst.
func ParseCapTable(dst []CapDescriptor, b []byte) ([]CapDescriptor, error) {
	if len(b) == 0 {
		return dst, nil
	}
	d := decoder{p: b, frame: TypeCall}
	return d.capTable(dst, true)
}

// MaxFunctionID bounds a function id or method name.
const MaxFunctionID = 1 << 10

// MaxPromises bounds the promise table of one CALL.
const MaxPromises = 1 << 10

// MaxPath bounds the segments of a path into a result.
const MaxPath = 64

// TargetKind says what a call's target names.
type TargetKind uint8

const (
	// TargetExport is a capability the callee exported (its export id).
	TargetExport TargetKind = 1
	// TargetAnswer is the capability found at Path in the retained answer
	// of the caller's earlier call ID, before or after it resolves.
	TargetAnswer TargetKind = 2
)

// Target is the object a CALL is addressed to when it is not a function
// of the callee's catalog.
type Target struct {
	Kind TargetKind
	ID   uint64 // export id or call id
	// Path is an encoded path into the answer (TargetAnswer only); see
	// AppendPath. Empty: the answer itself.
	Path []byte
}

// PromiseRef names the answer of an earlier retained call, or a part of
// it, that a call's arguments use.
type PromiseRef struct {
	ID   uint64 // the earlier call's id
	Path []byte // encoded path into its result (see AppendPath); empty: the whole result
}

// PathSegment is one step of a path into a result: a map key or struct
// field name, or an array index.
type PathSegment struct {
	Key     string
	Index   int
	IsIndex bool
}

// AppendPath encodes a path: a count, then per segment a tag byte (0: key,
// 1: index) and the key (length-prefixed) or the index (uvarint).
func AppendPath(dst []byte, path []PathSegment) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(path)))
	for _, s := range path {
		if s.IsIndex {
			dst = append(dst, 1)
			dst = binary.AppendUvarint(dst, uint64(s.Index))
			continue
		}
		dst = append(dst, 0)
		dst = binary.AppendUvarint(dst, uint64(len(s.Key)))
		dst = append(dst, s.Key...)
	}
	return dst
}

// ParsePath decodes a path that AppendPath wrote (as found in a Target or
// PromiseRef, which ParseCall has already checked).
func ParsePath(b []byte) ([]PathSegment, error) {
	if len(b) == 0 {
		return nil, nil
	}
	d := decoder{p: b, frame: TypeCall}
	return d.path(true)
}

// path reads (keep: and returns) an encoded path.
func (d *decoder) path(keep bool) ([]PathSegment, error) {
	n, err := d.uvarint("path length")
	if err != nil {
		return nil, err
	}
	if n > MaxPath {
		return nil, d.errorf("path of %d segments exceeds limit %d", n, MaxPath)
	}
	var out []PathSegment
	if keep {
		out = make([]PathSegment, 0, n)
	}
	for i := uint64(0); i < n; i++ {
		tag, err := d.byte1("path segment tag")
		if err != nil {
			return nil, err
		}
		switch tag {
		case 0:
			k, err := d.bytes("path key", MaxFunctionID)
			if err != nil {
				return nil, err
			}
			if keep {
				out = append(out, PathSegment{Key: string(k)})
			}
		case 1:
			v, err := d.uvarint("path index")
			if err != nil {
				return nil, err
			}
			if v > 1<<31 {
				return nil, d.errorf("path index %d out of range", v)
			}
			if keep {
				out = append(out, PathSegment{Index: int(v), IsIndex: true})
			}
		default:
			return nil, d.errorf("path segment tag %d unknown", tag)
		}
	}
	return out, nil
}

// skipPath checks an encoded path and returns its bytes.
func (d *decoder) skipPath() ([]byte, error) {
	start := d.off
	if _, err := d.path(false); err != nil {
		return nil, err
	}
	return d.p[start:d.off], nil
}

// CallFrame is everything of a CALL frame but its arguments.
type CallFrame struct {
	ID uint64
	// Stream and Retain set FlagStream and FlagRetain.
	Stream, Retain bool
	// Timeout is the caller's remaining time; zero means no deadline.
	// Relative, so clocks need not agree.
	Timeout  time.Duration
	Function string
	Metadata []MD
	Target   *Target         // nil: a function of the callee
	Promises []PromiseRef    // answers the arguments use
	Caps     []CapDescriptor // capabilities the arguments hold
}

// CheckCall reports what in f, but for its capability table, a peer's
// ParseCall would refuse as malformed: an empty, overlong or non-UTF-8
// function id, metadata over MaxMetadata, a promise table or a path over
// its limit. A sender checks before sending, since a malformed frame is a
// protocol error that closes the connection, failing every call on it.
func CheckCall(f *CallFrame) error {
	switch {
	case f.Function == "":
		return errors.New("empty function id")
	case len(f.Function) > MaxFunctionID:
		return fmt.Errorf("function id is %d bytes, over the limit of %d", len(f.Function), MaxFunctionID)
	case !utf8.ValidString(f.Function):
		return errors.New("function id is not valid UTF-8")
	}
	if err := CheckMetadata(f.Metadata); err != nil {
		return err
	}
	if f.Target != nil {
		if err := checkPath(f.Target.Path); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	if len(f.Promises) > MaxPromises {
		return fmt.Errorf("%d promises, over the limit of %d", len(f.Promises), MaxPromises)
	}
	for i, p := range f.Promises {
		if err := checkPath(p.Path); err != nil {
			return fmt.Errorf("promise %d: %w", i, err)
		}
	}
	return nil
}

// CheckMetadata reports metadata (or trailers) whose encoding is over
// MaxMetadata, which a peer's decoder refuses.
func CheckMetadata(md []MD) error {
	if len(md) == 0 {
		return nil
	}
	n := uvarintLen(uint64(len(md)))
	for _, kv := range md {
		n += uvarintLen(uint64(len(kv.Key))) + len(kv.Key) + uvarintLen(uint64(len(kv.Value))) + len(kv.Value)
	}
	if n > MaxMetadata {
		return fmt.Errorf("metadata is %d bytes, over the limit of %d", n, MaxMetadata)
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// checkPath checks an encoded path (AppendPath's) as the decoder does.
func checkPath(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	d := decoder{p: b, frame: TypeCall}
	if _, err := d.path(false); err != nil {
		var we *Error
		if errors.As(err, &we) {
			return errors.New(we.Msg)
		}
		return err
	}
	return nil
}

// AppendCall begins a CALL frame: header and every field but the
// arguments. Append the arguments (a msgpack array), then call
// EndFrame(buf, at).
//
// Payload layout: timeout (uvarint ns), function id (length-prefixed),
// metadata block, then, when flagged, the target (kind byte, uvarint id,
// path), the promise table (uvarint count, then per entry a uvarint call
// id and a path) and the capability table (see AppendCapTable), then the
// arguments.
func AppendCall(dst []byte, f *CallFrame) ([]byte, int) {
	var flags uint8
	if f.Stream {
		flags |= FlagStream
	}
	if f.Retain {
		flags |= FlagRetain
	}
	if f.Target != nil {
		flags |= FlagTarget
	}
	if len(f.Promises) > 0 {
		flags |= FlagPromises
	}
	if len(f.Caps) > 0 {
		flags |= FlagCaps
	}
	dst, at := BeginFrame(dst, TypeCall, flags, f.ID)
	timeout := f.Timeout
	if timeout < 0 {
		timeout = 1 // already expired: the smallest non-zero timeout
	}
	dst = binary.AppendUvarint(dst, uint64(timeout))
	dst = binary.AppendUvarint(dst, uint64(len(f.Function)))
	dst = append(dst, f.Function...)
	dst = appendMetadata(dst, f.Metadata)
	if t := f.Target; t != nil {
		dst = append(dst, byte(t.Kind))
		dst = binary.AppendUvarint(dst, t.ID)
		dst = appendRawPath(dst, t.Path)
	}
	if len(f.Promises) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(f.Promises)))
		for _, p := range f.Promises {
			dst = binary.AppendUvarint(dst, p.ID)
			dst = appendRawPath(dst, p.Path)
		}
	}
	if len(f.Caps) > 0 {
		dst = AppendCapTable(dst, f.Caps)
	}
	return dst, at
}

// appendRawPath appends an encoded path, or the empty path.
func appendRawPath(dst, path []byte) []byte {
	if len(path) == 0 {
		return append(dst, 0)
	}
	return append(dst, path...)
}

// Call is a decoded CALL payload. Its slices alias the payload.
type Call struct {
	Timeout  time.Duration
	Function []byte
	// Metadata holds the encoded key/value pairs; see ParseMetadata.
	Metadata []byte
	// Target is valid when HasTarget.
	Target    Target
	HasTarget bool
	// Promises holds the encoded promise table (count first); see
	// ParsePromises. Empty without FlagPromises.
	Promises []byte
	// Caps holds the encoded capability table; see ParseCapTable. Empty
	// without FlagCaps.
	Caps []byte
	Args []byte
}

// ParseCall decodes and checks a CALL payload whose header carried flags.
// The function id must be valid UTF-8.
func ParseCall(flags uint8, p []byte) (Call, error) {
	d := decoder{p: p, frame: TypeCall}
	var c Call
	if flags&^callFlags != 0 {
		return c, &Error{Frame: TypeCall, Offset: 5, Msg: "unknown CALL flags"}
	}
	t, err := d.uvarint("timeout")
	if err != nil {
		return c, err
	}
	if t > uint64(1<<63-1) {
		return c, d.errorf("timeout %d overflows", t)
	}
	c.Timeout = time.Duration(t)
	if c.Function, err = d.bytes("function id", MaxFunctionID); err != nil {
		return c, err
	}
	if len(c.Function) == 0 {
		return c, d.errorf("empty function id")
	}
	if !utf8.Valid(c.Function) {
		return c, d.errorf("function id is not valid UTF-8")
	}
	start := d.off
	if err := d.skipMetadata(); err != nil {
		return c, err
	}
	c.Metadata = p[start:d.off]
	if flags&FlagTarget != 0 {
		k, err := d.byte1("target kind")
		if err != nil {
			return c, err
		}
		if TargetKind(k) != TargetExport && TargetKind(k) != TargetAnswer {
			return c, d.errorf("target kind %d unknown", k)
		}
		c.Target.Kind = TargetKind(k)
		if c.Target.ID, err = d.uvarint("target id"); err != nil {
			return c, err
		}
		if c.Target.Path, err = d.skipPath(); err != nil {
			return c, err
		}
		if c.Target.Kind == TargetExport && len(c.Target.Path) > 1 {
			return c, d.errorf("a target export has no path")
		}
		if len(c.Target.Path) == 1 { // the empty path: keep it empty
			c.Target.Path = nil
		}
		c.HasTarget = true
	}
	if flags&FlagPromises != 0 {
		start := d.off
		n, err := d.uvarint("promise count")
		if err != nil {
			return c, err
		}
		if n == 0 || n > MaxPromises {
			return c, d.errorf("promise count %d out of range (1..%d)", n, MaxPromises)
		}
		for i := uint64(0); i < n; i++ {
			if _, err := d.uvarint("promise call id"); err != nil {
				return c, err
			}
			if _, err := d.skipPath(); err != nil {
				return c, err
			}
		}
		c.Promises = p[start:d.off]
	}
	if flags&FlagCaps != 0 {
		start := d.off
		if _, err := d.capTable(nil, false); err != nil {
			return c, err
		}
		c.Caps = p[start:d.off]
	}
	c.Args = p[d.off:]
	return c, nil
}

// Rebase makes c's slices, which alias the payload p that ParseCall read
// them from, alias q instead: a copy of p (at least as long). It spares
// parsing the copy again. Every slice ParseCall returns runs to p's
// capacity, so its offset in p is what its capacity lacks.
func (c *Call) Rebase(p, q []byte) {
	re := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		i := cap(p) - cap(b)
		return q[i : i+len(b)]
	}
	c.Function, c.Metadata, c.Target.Path = re(c.Function), re(c.Metadata), re(c.Target.Path)
	c.Promises, c.Caps, c.Args = re(c.Promises), re(c.Caps), re(c.Args)
}

// AppendResult appends a RESULT frame: the callee's trailers and
// capability table when there are any, then the encoded result.
func AppendResult(dst []byte, id uint64, result []byte, trailer []MD, caps []CapDescriptor) []byte {
	var flags uint8
	if len(trailer) > 0 {
		flags |= FlagMetadata
	}
	if len(caps) > 0 {
		flags |= FlagCaps
	}
	if flags == 0 {
		return AppendFrame(dst, TypeResult, 0, id, result)
	}
	dst, at := BeginFrame(dst, TypeResult, flags, id)
	if len(trailer) > 0 {
		dst = appendMetadata(dst, trailer)
	}
	if len(caps) > 0 {
		dst = AppendCapTable(dst, caps)
	}
	dst = append(dst, result...)
	EndFrame(dst, at)
	return dst
}

// AppendResultHeader appends a RESULT frame like AppendResult, except
// for its last part, the result itself, of resultLen bytes: the caller
// writes those next (from where they lie, without copying them here).
func AppendResultHeader(dst []byte, id uint64, resultLen int, trailer []MD, caps []CapDescriptor) []byte {
	at := len(dst)
	dst = AppendResult(dst, id, nil, trailer, caps)
	binary.BigEndian.PutUint32(dst[at:], uint32(len(dst)-at-HeaderSize+resultLen))
	return dst
}

// Result is a decoded RESULT payload; its slices alias the payload.
type Result struct {
	Trailer []byte // encoded metadata (ParseMetadata), or empty
	Caps    []byte // encoded capability table (ParseCapTable), or empty
	Value   []byte
}

// ParseResult decodes and checks a RESULT payload whose header carried
// flags.
func ParseResult(flags uint8, p []byte) (Result, error) {
	var r Result
	if flags&^(FlagMetadata|FlagCaps) != 0 {
		return r, &Error{Frame: TypeResult, Offset: 5, Msg: "unknown RESULT flags"}
	}
	d := decoder{p: p, frame: TypeResult}
	if flags&FlagMetadata != 0 {
		start := d.off
		if err := d.skipMetadata(); err != nil {
			return r, err
		}
		r.Trailer = p[start:d.off]
	}
	if flags&FlagCaps != 0 {
		start := d.off
		if _, err := d.capTable(nil, false); err != nil {
			return r, err
		}
		r.Caps = p[start:d.off]
	}
	r.Value = p[d.off:]
	return r, nil
}

// ParsePromises decodes a promise table that ParseCall has checked,
// appending to dst.
func ParsePromises(dst []PromiseRef, b []byte) ([]PromiseRef, error) {
	if len(b) == 0 {
		return dst, nil
	}
	d := decoder{p: b, frame: TypeCall}
	n, err := d.uvarint("promise count")
	if err != nil {
		return dst, err
	}
	if n > MaxPromises {
		return dst, d.errorf("promise count %d exceeds limit %d", n, MaxPromises)
	}
	for i := uint64(0); i < n; i++ {
		id, err := d.uvarint("promise call id")
		if err != nil {
			return dst, err
		}
		path, err := d.skipPath()
		if err != nil {
			return dst, err
		}
		if len(path) == 1 {
			path = nil
		}
		dst = append(dst, PromiseRef{ID: id, Path: path})
	}
	return dst, nil
}

// Values inside arguments and results that are not plain data are msgpack
// extensions of these types.
const (
	// CapabilityExt is a capability in a value: a uvarint index into the
	// message's capability table.
	CapabilityExt int8 = 0x42
	// PromiseExt is a promise placeholder in a CALL's arguments: a uvarint
	// index into the CALL's promise table, replaced by that answer before
	// the call runs.
	PromiseExt int8 = 0x41
)

// Kinds of capability descriptor (Cap'n Proto's CapDescriptor).
const (
	// CapSenderHosted: an export of the side that sent the message; the
	// receiver imports it.
	CapSenderHosted uint8 = 1
	// CapReceiverHosted: an export of the receiving side itself, passed
	// back to it; it resolves to the local object.
	CapReceiverHosted uint8 = 2
	// CapReceiverAnswer: the capability that a call the receiver is
	// answering returns (at Path in its result): a promised capability
	// passed back to the side that will produce it. The receiver resolves
	// it when the answer is in.
	CapReceiverAnswer uint8 = 3
)
