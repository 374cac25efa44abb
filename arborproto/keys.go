package arborproto

// This file holds the normal form of message arguments in request trees:
// what content keys hash, so that a message keys the same whichever form
// it arrived in.

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/value"
)

func init() { builtin.ArgNormalizer = argNormalizer }

// Normalize returns the normal form of a message of type mt given as the
// msgpack value v, in any form ReadMessage accepts: a msgpack bin holding
// the message's deterministic protobuf encoding (what AppendMessage
// writes). It returns v itself when v is in normal form already.
//
// Request-tree engines key (and then run) the arguments of generated
// functions in this form, so that one message gives one content key
// whether it came as protobuf binary from a Go client, as protojson in a
// Cradle JSON tree or from the CLI, or as nil:
//
//   - nil and the empty message are one value: both normalise to an
//     empty bin, and the handler receives an empty message, not nil.
//   - Binary: fields in field-number order, map entries sorted by key,
//     packed or unpacked repeated scalars, a field repeated in the input
//     (last one wins, messages merged), default values of fields without
//     presence: all come out one way.
//   - JSON: whatever protojson accepts (field or JSON names, numbers as
//     strings, enum names or numbers) comes out as the binary it parses
//     to.
//
// What is not normalised: fields unknown to this program's schema are
// kept byte for byte, in the order they came, after the known ones, so a
// message carrying them keys equal only to the same bytes (JSON cannot
// carry them: protojson refuses unknown fields). The contents of a
// google.protobuf.Any are bytes and keep their encoding. A field with
// presence set to its default differs from one left unset, as protobuf
// says. Floats keep their bits (NaN payloads, -0).
//
// Errors are those of ReadMessage, naming the message and where it
// breaks; a value followed by more bytes is refused.
func Normalize(mt protoreflect.MessageType, v []byte) ([]byte, error) {
	m := mt.New().Interface()
	r := value.NewReader(v)
	if err := ReadMessage(&r, m); err != nil {
		return nil, err
	}
	if rest := len(r.Rest()); rest != 0 {
		return nil, fmt.Errorf("%s: %d byte(s) after the value (at byte %d)", name(m), rest, r.Offset())
	}
	out, err := AppendMessage(make([]byte, 0, 5+marshal.Size(m)), m)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(out, v) {
		return v, nil
	}
	return out, nil
}

// argNormalizer is builtin.ArgNormalizer: for a generated unary function
// (its id a procedure, or a procedure with a caching suffix, of a service
// linked into this program, and its argument named by the method's input
// type, as Describe names it) it normalises the argument with Normalize;
// for anything else it returns nil. A hand-registered function under a
// procedure name whose argument type is named some other way is left
// alone: the catalog's type name is what says the argument is the
// message.
func argNormalizer(id string, args []string) func(i int, v []byte) ([]byte, error) {
	md, err := MethodOf(protoregistry.GlobalFiles, id)
	if err != nil || KindOf(md) != arbor.KindUnary {
		return nil
	}
	in := md.Input().FullName()
	if len(args) != 1 || args[0] != string(in) {
		return nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(in)
	if err != nil {
		return nil
	}
	return func(i int, v []byte) ([]byte, error) {
		if i != 0 {
			return v, nil
		}
		return Normalize(mt, v)
	}
}
