// Package codegen turns .proto files into Go: protobuf-go's message types
// and Arbor's services, with or without protoc. It is the one core behind
// both entry points: `arbor gen` (Compile, then Generate) and the protoc
// or buf plugin cmd/protoc-gen-arbor (GenerateServices on the plugin's
// protogen.Plugin).
//
// Compile parses and links .proto files with bufbuild/protocompile (the
// standard imports, well-known types included, and arbor/v1/options.proto
// resolve with no -I) and builds the CodeGeneratorRequest protoc would
// send a plugin, in memory. Generate runs two generators on it:
//
//   - Message types come from protobuf-go's own generator, the
//     protoc-gen-go command at exactly the version this module requires
//     (ProtobufVersion). Its code is an internal package of protobuf-go
//     (cmd/protoc-gen-go/internal_gengo), which Go lets no other module
//     import, and copying it is not an option; so Generate runs the
//     protoc-gen-go command itself as a plugin, fed the request on stdin
//     as protoc would, built once with `go install` into the user's cache
//     directory (ProtocGenGo). No protoc is involved; the Go toolchain is,
//     which a user generating Go code has. The golden tests catch any
//     drift of its output.
//   - Services come from GenerateServices, run in process on a
//     protogen.Plugin made from the same request: the handler interface,
//     the Unimplemented struct to embed, Register…Handler, the client over
//     an arbor.Caller (with promise and request-tree forms of each unary
//     method), and the AppendMsgpack/ReadMsgpack methods that carry each
//     message as protobuf binary (package arborproto).
//
// protoc-gen-arbor runs GenerateServices on the request protoc sends, so
// its service files are byte for byte those of `arbor gen`.
//
// It is not a protobuf parser (protocompile is) nor a runtime (package
// arborproto is what generated code calls).
package codegen
