package arborproto

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/value"
)

// SchemaFunction is the id of the built-in function that describes a
// generated function: arbor.schema(id string) Schema. It answers NotFound
// for a function the server lacks or that no .proto describes.
const SchemaFunction = "arbor.schema"

// Schema describes a function generated from a .proto service.
type Schema struct {
	// Function is the function id asked about.
	Function string `msgpack:"function" json:"function"`
	// Service and Method are the full service name and the method name
	// (routeguide.RouteGuide, GetFeature).
	Service string     `msgpack:"service" json:"service"`
	Method  string     `msgpack:"method" json:"method"`
	Kind    arbor.Kind `msgpack:"kind" json:"kind"`
	// Input and Output are the full names of the message types.
	Input  string `msgpack:"input" json:"input"`
	Output string `msgpack:"output" json:"output"`
	// Files is a google.protobuf.FileDescriptorSet in protobuf binary: the
	// file defining the service and every file it imports, dependencies
	// first; enough to read and print both messages with no .proto at
	// hand.
	Files []byte `msgpack:"files" json:"files"`
}

// Describe is the registration option generated code passes for method
// md: the catalog shows the method's message types by their proto names
// (routeguide.Point, stream routeguide.Feature) rather than Go's.
func Describe(md protoreflect.MethodDescriptor) arbor.HandleOption {
	in, out := string(md.Input().FullName()), string(md.Output().FullName())
	return func(f *arbor.FunctionInfo) {
		switch KindOf(md) {
		case arbor.KindUnary:
			f.Args, f.Result = []string{in}, out
		case arbor.KindServerStream:
			f.Args, f.Result = []string{in}, "stream "+out
		case arbor.KindClientStream:
			f.Args, f.Result = []string{"stream " + in}, out
		case arbor.KindBidiStream:
			f.Args, f.Result = []string{"stream " + in}, "stream "+out
		}
	}
}

// KindOf is the call kind of a method.
func KindOf(md protoreflect.MethodDescriptor) arbor.Kind {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return arbor.KindBidiStream
	case md.IsStreamingServer():
		return arbor.KindServerStream
	case md.IsStreamingClient():
		return arbor.KindClientStream
	}
	return arbor.KindUnary
}

// Procedure is the function id of a method: its gRPC procedure name,
// "/package.Service/Method".
func Procedure(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

// EnableSchema registers SchemaFunction on r if r is an *arbor.Server
// that lacks it (generated registration calls it); on anything else it
// does nothing.
func EnableSchema(r arbor.Registrar) error {
	srv, ok := r.(*arbor.Server)
	if !ok {
		return nil
	}
	if _, ok := srv.Function(SchemaFunction); ok {
		return nil
	}
	err := builtin.Register(srv, SchemaFunction, []string{"string"}, "arborproto.Schema", func(ctx context.Context, args []byte) ([]byte, error) {
		r := value.NewReader(args)
		if n, err := r.ReadArrayHeader(); err != nil || n != 1 {
			return nil, arbor.Errorf(arbor.InvalidArgument, "%s takes 1 argument (a function id)", SchemaFunction)
		}
		id, err := r.ReadString()
		if err != nil {
			return nil, arbor.Errorf(arbor.InvalidArgument, "%s: argument 0 (string): %v", SchemaFunction, err)
		}
		if _, ok := srv.Function(id); !ok {
			return nil, arbor.Errorf(arbor.NotFound, "%s: no function %q on this server", SchemaFunction, id)
		}
		s, err := SchemaOf(protoregistry.GlobalFiles, id)
		if err != nil {
			return nil, err
		}
		return value.For[*Schema]().Append(nil, s)
	})
	if arbor.CodeOf(err) == arbor.AlreadyExists { // registered meanwhile
		return nil
	}
	return err
}

// MethodOf finds the method a function id names in files: a gRPC
// procedure name ("/pkg.Service/Method"), with or without a caching-level
// suffix ("+mem").
func MethodOf(files *protoregistry.Files, id string) (protoreflect.MethodDescriptor, error) {
	base := id
	if request.LevelOf(id) != request.None || strings.HasSuffix(id, "+none") {
		base = id[:strings.LastIndexByte(id, '+')]
	}
	svc, method, ok := strings.Cut(strings.TrimPrefix(base, "/"), "/")
	if !ok || !strings.HasPrefix(base, "/") || method == "" || strings.Contains(method, "/") {
		return nil, arbor.Errorf(arbor.NotFound, "%q is not a generated function (want /package.Service/Method)", id)
	}
	d, err := files.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, arbor.Errorf(arbor.NotFound, "no .proto service %s is linked into this server (function %q)", svc, id)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, arbor.Errorf(arbor.NotFound, "%s is a %T, not a service (function %q)", svc, d, id)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, arbor.Errorf(arbor.NotFound, "service %s has no method %s (function %q)", svc, method, id)
	}
	return md, nil
}

// SchemaOf describes the generated function id from the descriptors in
// files.
func SchemaOf(files *protoregistry.Files, id string) (*Schema, error) {
	md, err := MethodOf(files, id)
	if err != nil {
		return nil, err
	}
	set, err := marshal.Marshal(FileSet(md.ParentFile()))
	if err != nil {
		return nil, arbor.Errorf(arbor.Internal, "%s: encoding the schema: %v", id, err)
	}
	return &Schema{
		Function: id, Service: string(md.Parent().FullName()), Method: string(md.Name()), Kind: KindOf(md),
		Input: string(md.Input().FullName()), Output: string(md.Output().FullName()), Files: set,
	}, nil
}

// FileSet returns fd and every file it imports, transitively,
// dependencies first.
func FileSet(fds ...protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := 0; i < imps.Len(); i++ {
			add(imps.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range fds {
		add(fd)
	}
	return set
}

// Files reads a FileDescriptorSet (Schema.Files) into a registry whose
// message types dynamicpb can build.
func Files(set []byte) (*protoregistry.Files, error) {
	var fds descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(set, &fds); err != nil {
		return nil, fmt.Errorf("reading a schema's file set: %w", err)
	}
	files, err := protodesc.NewFiles(&fds)
	if err != nil {
		return nil, fmt.Errorf("reading a schema's file set: %w", err)
	}
	return files, nil
}

// Options are the registration options generated code gives method
// (of service sd): Describe, then those the .proto implies (fromProto),
// then the caller's (opts), which may override them.
func Options(sd protoreflect.ServiceDescriptor, method string, opts []arbor.HandleOption, fromProto ...arbor.HandleOption) []arbor.HandleOption {
	out := make([]arbor.HandleOption, 0, 1+len(fromProto)+len(opts))
	if md := sd.Methods().ByName(protoreflect.Name(method)); md != nil {
		out = append(out, Describe(md))
	}
	out = append(out, fromProto...)
	return append(out, opts...)
}
