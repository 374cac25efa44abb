package bridge

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/arbor-rpc/arbor"
)

// The gRPC protocol's pieces of the native server: content types,
// grpc-timeout, metadata and trailers, statuses and their details,
// grpc-message's encoding.

// grpcSubtype returns the part after application/grpc+ ("" for none).
func grpcSubtype(ct string) (string, bool) {
	rest, ok := strings.CutPrefix(ct, "application/grpc")
	if !ok {
		return "", false
	}
	rest, _, _ = strings.Cut(rest, ";")
	if rest == "" {
		return "", true
	}
	sub, ok := strings.CutPrefix(rest, "+")
	return sub, ok
}

// parseTimeout reads grpc-timeout: up to 8 digits and a unit.
func parseTimeout(s string) (time.Duration, error) {
	if len(s) < 2 || len(s) > 9 {
		return 0, fmt.Errorf("malformed grpc-timeout %q", s)
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed grpc-timeout %q", s)
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("malformed grpc-timeout %q: unknown unit", s)
	}
	if n > uint64(1<<63-1)/uint64(unit) {
		return 1<<63 - 1, nil
	}
	return time.Duration(n) * unit, nil
}

// fieldMetadata is metadata() for HTTP/2 header fields: lower-case keys
// (HTTP/2's), sorted, values of a key in order, protocol headers left out.
func fieldMetadata(fields []hpack.HeaderField) arbor.Metadata {
	var md arbor.Metadata
	for _, hf := range fields {
		if hf.IsPseudo() || isProtocolHeader(hf.Name) {
			continue
		}
		md = append(md, arbor.Pair{Key: hf.Name, Value: hf.Value})
	}
	slices.SortStableFunc(md, func(a, b arbor.Pair) int { return strings.Compare(a.Key, b.Key) })
	return md
}

// trailerMetadata is the trailers set with arbor.SetTrailer, as addTrailer
// takes them, and only those HTTP/2 can carry.
func trailerMetadata(ictx context.Context) arbor.Metadata {
	in := arbor.InboundTrailer(ictx)
	if len(in) == 0 {
		return nil
	}
	out := in[:0]
	for _, p := range in {
		k := strings.ToLower(p.Key)
		if isProtocolHeader(k) || !validFieldName(k) || !validFieldValue(p.Value) {
			continue
		}
		out = append(out, arbor.Pair{Key: k, Value: p.Value})
	}
	return out
}

// grpcStatus is an error's gRPC status (Arbor's codes are gRPC's).
func grpcStatus(err error) (arbor.Code, string, []byte) {
	code := arbor.CodeOf(err)
	msg := err.Error()
	var details []byte
	var ae *arbor.Error
	if errors.As(err, &ae) {
		msg, details = ae.Message, ae.Details
	}
	if code == arbor.OK || code > arbor.Unauthenticated {
		code = arbor.Unknown
	}
	return code, msg, details
}

// bytesValueURL is the type of the detail an error's opaque Details
// travel in.
const bytesValueURL = "type.googleapis.com/google.protobuf.BytesValue"

// statusDetailsBin is grpc-status-details-bin: Details as they are when
// they hold a google.rpc.Status of the same code (gRPC's own form),
// otherwise a google.rpc.Status holding them as one
// google.protobuf.BytesValue detail; base64 without padding.
func statusDetailsBin(code arbor.Code, msg string, details []byte) string {
	if c, ok := rpcStatusCode(details); ok && c == uint64(code) {
		return base64.RawStdEncoding.EncodeToString(details)
	}
	var bv []byte
	bv = protowire.AppendTag(bv, 1, protowire.BytesType)
	bv = protowire.AppendBytes(bv, details)
	var anyb []byte
	anyb = protowire.AppendTag(anyb, 1, protowire.BytesType)
	anyb = protowire.AppendString(anyb, bytesValueURL)
	anyb = protowire.AppendTag(anyb, 2, protowire.BytesType)
	anyb = protowire.AppendBytes(anyb, bv)
	var s []byte
	s = protowire.AppendTag(s, 1, protowire.VarintType)
	s = protowire.AppendVarint(s, uint64(code))
	s = protowire.AppendTag(s, 2, protowire.BytesType)
	s = protowire.AppendString(s, msg)
	s = protowire.AppendTag(s, 3, protowire.BytesType)
	s = protowire.AppendBytes(s, anyb)
	return base64.RawStdEncoding.EncodeToString(s)
}

// detailAnys is Details as the google.protobuf.Any list of a
// google.rpc.Status, as statusDetailsBin sends them: the Status's own
// details when Details hold one of the same code, else one BytesValue
// holding them. (The Connect path's form of the same error.)
func detailAnys(code arbor.Code, details []byte) []*anypb.Any {
	if c, ok := rpcStatusCode(details); ok && c == uint64(code) {
		var out []*anypb.Any
		for b := details; len(b) > 0; {
			num, typ, n := protowire.ConsumeTag(b)
			b = b[n:] // checked by rpcStatusCode
			n = protowire.ConsumeFieldValue(num, typ, b)
			if num == 3 {
				v, _ := protowire.ConsumeBytes(b)
				var a anypb.Any
				if proto.Unmarshal(v, &a) == nil {
					out = append(out, &a)
				}
			}
			b = b[n:]
		}
		return out
	}
	var bv []byte
	bv = protowire.AppendTag(bv, 1, protowire.BytesType)
	bv = protowire.AppendBytes(bv, details)
	return []*anypb.Any{{TypeUrl: bytesValueURL, Value: bv}}
}

// rpcStatusCode returns the code of b if b parses as a google.rpc.Status
// (fields 1 varint, 2 and 3 length-delimited, nothing else).
func rpcStatusCode(b []byte) (uint64, bool) {
	var code uint64
	seen := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, false
			}
			code, seen, b = v, true, b[m:]
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			_, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return 0, false
			}
			b = b[m:]
		default:
			return 0, false
		}
	}
	return code, seen
}

// validFieldName reports whether k is a lower-case HTTP token (HTTP/2's
// field names).
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		b := k[i]
		switch {
		case b >= 'a' && b <= 'z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// validFieldValue reports whether v may be a field value: no control
// bytes but tab.
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// percentEncode is grpc-message's encoding: bytes outside printable
// ASCII, and '%', as %XX.
func percentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b > 0x7e || b == '%' {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	out := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b > 0x7e || b == '%' {
			out = append(out, '%', hex[b>>4], hex[b&15])
		} else {
			out = append(out, b)
		}
	}
	return string(out)
}
