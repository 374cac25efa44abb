// Package builtin lets this module's own packages (package tree's
// arbor.resolve, say) register functions under the reserved "arbor."
// prefix, which the root package refuses to users. It is not for users;
// the internal path keeps it so.
package builtin

import "context"

// RawFunc is a function over an encoded argument array and result.
type RawFunc = func(ctx context.Context, args []byte) ([]byte, error)

// Register registers fn as a built-in unary function on srv (an
// *arbor.Server). The root package sets it when it initializes; it is
// never changed afterwards.
var Register func(srv any, id string, args []string, result string, fn RawFunc) error

// Invoke runs function id of srv (an *arbor.Server) in process through
// its interceptors, like Server.Invoke, but returns errors as the lower
// layers' type (internal/status), which engines below the root package
// read. Set by the root package when it initializes.
var Invoke func(srv any, ctx context.Context, id string, args []byte) ([]byte, error)

// Registrar returns an arbor.Registrar (as any) that registers built-in
// functions of any kind on srv (an *arbor.Server), under the reserved
// prefix. Set by the root package when it initializes.
var Registrar func(srv any) any

// DrainBegun returns a channel closed once srv (an *arbor.Server) begins
// to shut down (Shutdown or Close): from then on Server.Draining is true.
// Set by the root package when it initializes.
var DrainBegun func(srv any) <-chan struct{}

// ArgNormalizer, when set, returns for a registered function (its id and
// the argument types its catalog entry names) the function that brings
// an argument value (one canonical msgpack value) into the one encoding
// all equal values of its type share, or nil when values of its
// arguments have one encoding already. Request-tree engines key and run
// arguments in that form, so that a value sent in two encodings (a
// protobuf message as protojson from a JSON tree, and as protobuf binary
// from a Go client) hits one cache entry. Set by package arborproto when
// it initializes: only a program linking generated code has functions
// that need it. Never changed afterwards.
var ArgNormalizer func(id string, args []string) func(i int, v []byte) ([]byte, error)
