package arborproto

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// decodeError explains why protobuf binary did not decode as m: it walks
// the encoding along m's descriptor to the field where it breaks, since
// protobuf's own errors name neither ("cannot parse invalid wire-format
// data").
func decodeError(b []byte, m proto.Message, err error) error {
	md := m.ProtoReflect().Descriptor()
	if where := locate(b, md, 0, 0); where != "" {
		return fmt.Errorf("invalid protobuf for %s: %s", md.FullName(), where)
	}
	return fmt.Errorf("invalid protobuf for %s: %w", md.FullName(), err)
}

// locate returns where the encoding of a md message starting at byte base
// breaks, or "" if its framing is sound (the error lies in a value, which
// protobuf's message then names: invalid UTF-8 in field x, say).
func locate(b []byte, md protoreflect.MessageDescriptor, base, depth int) string {
	if depth > MaxRecursion {
		return fmt.Sprintf("nested deeper than %d messages (at byte %d)", MaxRecursion, base)
	}
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return fmt.Sprintf("bad field tag at byte %d: %v", base+off, protowire.ParseError(n))
		}
		fd := md.Fields().ByNumber(num)
		label := fmt.Sprintf("field %d", num)
		if fd != nil {
			label = fmt.Sprintf("field %s (%d)", fd.Name(), num)
		}
		if fd != nil && !wireTypeFits(fd, typ) {
			fd = nil // protobuf reads a field of another wire type as an unknown field
		}
		valStart := off + n
		m := protowire.ConsumeFieldValue(num, typ, b[valStart:])
		if m < 0 {
			return fmt.Sprintf("%s at byte %d: %v", label, base+off, protowire.ParseError(m))
		}
		if fd != nil && typ == protowire.BytesType {
			v, vn := protowire.ConsumeBytes(b[valStart:])
			inner := base + valStart + vn - len(v)
			switch want := kindWireType(fd.Kind()); {
			case fd.Message() != nil: // a message, or a map entry
				if w := locate(v, fd.Message(), inner, depth+1); w != "" {
					return label + ": " + w
				}
			case fd.Kind() == protoreflect.StringKind && checksUTF8(fd) && !utf8.Valid(v):
				return fmt.Sprintf("%s at byte %d: invalid UTF-8", label, inner)
			case want != protowire.BytesType: // packed repeated scalars
				if w := locatePacked(v, want, inner); w != "" {
					return label + " " + w
				}
			}
		}
		off = valStart + m
	}
	return ""
}

// locatePacked returns where the packed elements of wire type typ in b,
// starting at byte base, break, or "" if they do not.
func locatePacked(b []byte, typ protowire.Type, base int) string {
	for off := 0; off < len(b); {
		var n int
		switch typ {
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b[off:])
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b[off:])
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b[off:])
		default:
			return ""
		}
		if n < 0 {
			return fmt.Sprintf("at byte %d: %v", base+off, protowire.ParseError(n))
		}
		off += n
	}
	return ""
}

// checksUTF8 reports whether protobuf-go refuses invalid UTF-8 in fd:
// proto3 does, proto2 does not, editions as the field's utf8_validation
// feature says (by default, verify). protobuf-go's descriptors expose the
// feature as EnforceUTF8, which its decoder asks too (the module is
// pinned exactly, so the method cannot vanish under us).
func checksUTF8(fd protoreflect.FieldDescriptor) bool {
	switch fd.ParentFile().Syntax() {
	case protoreflect.Proto2:
		return false
	case protoreflect.Editions:
		if e, ok := fd.(interface{ EnforceUTF8() bool }); ok {
			return e.EnforceUTF8()
		}
	}
	return true
}

// wireTypeFits reports whether a field of fd's kind may arrive with wire
// type typ (packed repeated scalars come as bytes).
func wireTypeFits(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	want := kindWireType(fd.Kind())
	packable := want == protowire.VarintType || want == protowire.Fixed32Type || want == protowire.Fixed64Type
	return typ == want || (fd.IsList() && typ == protowire.BytesType && packable)
}

func kindWireType(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
		protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
		return protowire.VarintType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	}
	return protowire.BytesType
}
