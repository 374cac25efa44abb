package arborproto_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/arbor-rpc/arbor/arborproto"
)

// editionsMessage builds, in an edition 2023 file, message M { string
// name = 1; int64 n = 2; } whose name has utf8_validation as given.
func editionsMessage(t *testing.T, validation descriptorpb.FeatureSet_Utf8Validation) *dynamicpb.Message {
	t.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("utf8.proto"),
		Package: proto.String("utf8test"),
		Syntax:  proto.String("editions"),
		Edition: descriptorpb.Edition_EDITION_2023.Enum(),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("M"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("name"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
					Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("name"),
					Options: &descriptorpb.FieldOptions{Features: &descriptorpb.FeatureSet{Utf8Validation: validation.Enum()}}},
				{Name: proto.String("n"), Number: proto.Int32(2), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(),
					Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String("n")},
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatal(err)
	}
	return dynamicpb.NewMessage(fd.Messages().ByName("M"))
}

// In an editions file whose string field skips UTF-8 validation, invalid
// UTF-8 there is no error, so a malformed field after it is the one
// named; with validation (the default) the string is.
func TestDecodeErrorHonoursUTF8Validation(t *testing.T) {
	b := []byte{0x0a, 0x01, 0xff, 0x10, 0xff} // name: "\xff", then n: a truncated varint
	for _, tc := range []struct {
		validation descriptorpb.FeatureSet_Utf8Validation
		want       string
	}{
		{descriptorpb.FeatureSet_NONE, "field n (2) at byte 3"},
		{descriptorpb.FeatureSet_VERIFY, "field name (1) at byte 2: invalid UTF-8"},
	} {
		t.Run(tc.validation.String(), func(t *testing.T) {
			err := arborproto.Unmarshal(b, editionsMessage(t, tc.validation))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tc.want)
			}
		})
	}
}
