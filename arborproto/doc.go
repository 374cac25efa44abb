// Package arborproto is what code generated from .proto files (arbor gen,
// protoc-gen-arbor) calls at run time: protobuf messages as Arbor values,
// and the schemas of generated functions.
//
// A generated message travels in Arbor frames as protobuf binary
// (deterministic marshalling, so that equal messages give equal content
// keys) inside a msgpack bin, appended straight into the frame buffer. The
// generated AppendMsgpack and ReadMsgpack methods call AppendMessage and
// ReadMessage; a message of another Go package (a well-known type, say),
// which cannot get methods, travels through the Of adapter, with the same
// bytes on the wire. ReadMessage also accepts a msgpack map, read as
// protojson: that is how a message typed as JSON on the command line or in
// a Cradle JSON request tree arrives.
//
// Request-tree content keys depend on a message's value, not on the form
// it came in: linking this package gives the resolution engine (package
// tree) a normaliser for the argument of every generated unary function,
// Normalize, which turns protojson, non-deterministic binary and nil into
// the deterministic binary of the message (the empty message for nil), so
// a tree sent as Cradle JSON hits what the same tree from a Go client
// cached. Normalize's doc says what is and is not normalised.
//
// Generated registration describes each function with Describe (proto
// message names in the catalog instead of Go type names) and enables the
// built-in arbor.schema function (SchemaFunction), which returns the full
// message schemas of a generated function as a FileDescriptorSet.
//
// It is not a protobuf implementation (google.golang.org/protobuf is), nor
// the generator (package codegen), nor the HTTP bridge (package bridge).
package arborproto
