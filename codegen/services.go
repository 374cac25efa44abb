package codegen

import (
	"fmt"
	"go/token"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// The packages generated code imports.
const (
	contextPkg    = protogen.GoImportPath("context")
	arborPkg      = protogen.GoImportPath("github.com/arbor-rpc/arbor")
	arborprotoPkg = protogen.GoImportPath("github.com/arbor-rpc/arbor/arborproto")
	valuePkg      = protogen.GoImportPath("github.com/arbor-rpc/arbor/value")
	requestPkg    = protogen.GoImportPath("github.com/arbor-rpc/arbor/request")
)

// FileSuffix ends the name of every file GenerateServices writes, after
// the .proto file's generated-file prefix (route_guide.arbor.go).
const FileSuffix = ".arbor.go"

// SupportedFeatures are the protobuf features the generators handle:
// proto3 optional fields and editions (up to MaxEdition).
const SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL | pluginpb.CodeGeneratorResponse_FEATURE_SUPPORTS_EDITIONS)

// The editions GenerateServices supports.
const (
	MinEdition = descriptorpb.Edition_EDITION_PROTO2
	MaxEdition = descriptorpb.Edition_EDITION_2023
)

// cacheOption is arbor/v1/options.proto's arbor.v1.cache.
const (
	cacheOptionName   = "arbor.v1.cache"
	cacheOptionNumber = 50811
)

// cacheSuffixes maps arbor.v1.CacheLevel values to function-id suffixes.
var cacheSuffixes = map[int32]string{0: "", 1: "", 2: "+mem", 3: "+full", 4: "+mem_vb", 5: "+full_vb"}

// GenerateServices generates, for every file gen is asked to generate
// that has messages or services, FILE.arbor.go in the file's Go package:
// AppendMsgpack and ReadMsgpack on each message (protobuf binary in Arbor
// frames), and for each service its names, handler interface,
// Unimplemented struct, registration, client and request-tree
// constructors. It sets gen's supported features. A construct it cannot
// generate is an error naming it.
func GenerateServices(gen *protogen.Plugin) error {
	gen.SupportedFeatures = SupportedFeatures
	gen.SupportedEditionsMinimum = MinEdition
	gen.SupportedEditionsMaximum = MaxEdition
	taken := packageNames(gen)
	for _, f := range gen.Files {
		if !f.Generate || (len(f.Messages) == 0 && len(f.Services) == 0) {
			continue
		}
		if err := generateFile(gen, f, taken[f.GoImportPath]); err != nil {
			return err
		}
	}
	return nil
}

// packageNames collects the top-level Go names protoc-gen-go declares in
// each package, so that generated names colliding with them are refused
// rather than left to the compiler.
func packageNames(gen *protogen.Plugin) map[protogen.GoImportPath]map[string]string {
	out := map[protogen.GoImportPath]map[string]string{}
	for _, f := range gen.Files {
		names := out[f.GoImportPath]
		if names == nil {
			names = map[string]string{}
			out[f.GoImportPath] = names
		}
		var msgs func([]*protogen.Message)
		msgs = func(ms []*protogen.Message) {
			for _, m := range ms {
				names[m.GoIdent.GoName] = "message " + string(m.Desc.FullName())
				for _, e := range m.Enums {
					names[e.GoIdent.GoName] = "enum " + string(e.Desc.FullName())
				}
				for _, o := range m.Oneofs {
					for _, fl := range o.Fields {
						names[fl.GoIdent.GoName] = "oneof field " + string(fl.Desc.FullName())
					}
				}
				msgs(m.Messages)
			}
		}
		msgs(f.Messages)
		for _, e := range f.Enums {
			names[e.GoIdent.GoName] = "enum " + string(e.Desc.FullName())
			for _, v := range e.Values {
				names[v.GoIdent.GoName] = "enum value " + string(v.Desc.FullName())
			}
		}
	}
	return out
}

// fileGen is the generation of one file.
type fileGen struct {
	gen   *protogen.Plugin
	f     *protogen.File
	g     *protogen.GeneratedFile
	taken map[string]string // top-level Go names of the package → what declares them
	pkgs  map[string]bool   // names of the message packages the file refers to
}

// name is n as a parameter or variable of generated code, made unlike
// the packages and types the code refers to, which it would shadow.
func (fg *fileGen) name(n string) string {
	for fg.pkgs[n] || fg.taken[n] != "" {
		n += "_"
	}
	return n
}

// goSanitized is the package name protogen gives an import path whose
// last element is s (protobuf-go's internal strs.GoSanitized).
func goSanitized(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return '_'
	}, s)
	r, _ := utf8.DecodeRuneInString(s)
	if token.Lookup(s).IsKeyword() || !unicode.IsLetter(r) {
		return "_" + s
	}
	return s
}

func generateFile(gen *protogen.Plugin, f *protogen.File, taken map[string]string) error {
	fg := &fileGen{gen: gen, f: f, taken: taken, pkgs: map[string]bool{}}
	for _, s := range f.Services {
		for _, m := range s.Methods {
			for _, msg := range []*protogen.Message{m.Input, m.Output} {
				if !fg.local(msg) {
					fg.pkgs[goSanitized(path.Base(string(msg.GoIdent.GoImportPath)))] = true
				}
			}
		}
	}
	// Check everything before writing, so that a refused file leaves no
	// half-generated output.
	for _, s := range f.Services {
		if err := fg.check(s); err != nil {
			return err
		}
	}
	if err := checkMessages(f.Messages); err != nil {
		return err
	}
	fg.g = gen.NewGeneratedFile(f.GeneratedFilenamePrefix+FileSuffix, f.GoImportPath)
	g := fg.g
	g.P("// Code generated by protoc-gen-arbor. DO NOT EDIT.")
	g.P("// source: ", f.Desc.Path())
	g.P()
	g.P("package ", f.GoPackageName)
	g.P()
	fg.messages(f.Messages)
	for _, s := range f.Services {
		fg.service(s)
	}
	return nil
}

// checkMessages refuses messages whose generated Go type already has a
// member named like the methods added to it: a field, or a oneof (whose
// fields are members of its wrapper types, not of the message's).
func checkMessages(ms []*protogen.Message) error {
	for _, m := range ms {
		for _, fl := range m.Fields {
			if fl.Oneof != nil && !fl.Oneof.Desc.IsSynthetic() {
				continue
			}
			if fl.GoName == "AppendMsgpack" || fl.GoName == "ReadMsgpack" {
				return fmt.Errorf("%s: field %s becomes Go field %s, which collides with the method Arbor adds to carry %s as protobuf; rename the field",
					pos(fl.Desc), fl.Desc.Name(), fl.GoName, m.Desc.FullName())
			}
		}
		for _, o := range m.Oneofs {
			if !o.Desc.IsSynthetic() && (o.GoName == "AppendMsgpack" || o.GoName == "ReadMsgpack") {
				return fmt.Errorf("%s: oneof %s becomes Go field %s, which collides with the method Arbor adds to carry %s as protobuf; rename the oneof",
					pos(o.Desc), o.Desc.Name(), o.GoName, m.Desc.FullName())
			}
		}
		if err := checkMessages(m.Messages); err != nil {
			return err
		}
	}
	return nil
}

// messages adds AppendMsgpack and ReadMsgpack to each message (map
// entries have no Go type).
func (fg *fileGen) messages(ms []*protogen.Message) {
	g := fg.g
	for _, m := range ms {
		if m.Desc.IsMapEntry() {
			continue
		}
		name := m.GoIdent.GoName
		g.P("// AppendMsgpack implements value.Marshaler: a ", name, " travels in Arbor calls as")
		g.P("// its deterministic protobuf encoding, in a msgpack bin.")
		g.P("func (x *", name, ") AppendMsgpack(b []byte, _ any) ([]byte, error) {")
		g.P("return ", g.QualifiedGoIdent(arborprotoPkg.Ident("AppendMessage")), "(b, x)")
		g.P("}")
		g.P()
		g.P("// ReadMsgpack implements value.Unmarshaler: protobuf binary, or a msgpack map")
		g.P("// (JSON from the CLI or a Cradle JSON request tree) read as protojson.")
		g.P("func (x *", name, ") ReadMsgpack(r *", g.QualifiedGoIdent(valuePkg.Ident("Reader")), ", _ any) error {")
		g.P("return ", g.QualifiedGoIdent(arborprotoPkg.Ident("ReadMessage")), "(r, x)")
		g.P("}")
		g.P()
		fg.messages(m.Messages)
	}
}

// method is what generation needs to know about one method.
type method struct {
	m           *protogen.Method
	kind        string // unary, server, client, bidi
	idempotent  bool
	cacheSuffix string
}

func (fg *fileGen) methodInfo(m *protogen.Method) (method, error) {
	mi := method{m: m, kind: "unary"}
	switch {
	case m.Desc.IsStreamingClient() && m.Desc.IsStreamingServer():
		mi.kind = "bidi"
	case m.Desc.IsStreamingServer():
		mi.kind = "server"
	case m.Desc.IsStreamingClient():
		mi.kind = "client"
	}
	opts, _ := m.Desc.Options().(*descriptorpb.MethodOptions)
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS, descriptorpb.MethodOptions_IDEMPOTENT:
		mi.idempotent = true
	}
	level, ok := cacheLevel(opts)
	if ok {
		suffix, known := cacheSuffixes[level]
		if !known {
			return mi, fmt.Errorf("%s: method %s: (%s) = %d is not an arbor.v1.CacheLevel", pos(m.Desc), m.Desc.FullName(), cacheOptionName, level)
		}
		if suffix != "" && mi.kind != "unary" {
			return mi, fmt.Errorf("%s: method %s: (%s) is set on a %s-streaming method; request trees cache unary methods only", pos(m.Desc), m.Desc.FullName(), cacheOptionName, mi.kind)
		}
		mi.cacheSuffix = suffix
	}
	return mi, nil
}

// cacheLevel reads arbor.v1.cache from opts: a known extension when
// arbor/v1/options.pb.go is linked (or protogen built a dynamic one),
// else from the unknown fields.
func cacheLevel(opts *descriptorpb.MethodOptions) (int32, bool) {
	if opts == nil {
		return 0, false
	}
	var level int32
	var found bool
	opts.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.FullName() == cacheOptionName {
			level, found = int32(v.Enum()), true
			return false
		}
		return true
	})
	if found {
		return level, true
	}
	b := opts.ProtoReflect().GetUnknown()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if num == cacheOptionNumber && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				break
			}
			level, found = int32(v), true
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			break
		}
		b = b[n:]
	}
	return level, found
}

// names are the Go names generated for one service.
func (fg *fileGen) check(s *protogen.Service) error {
	loc := pos(s.Desc)
	svc := s.GoName
	mine := map[string]string{}
	claim := func(name, what string) error {
		if prev, ok := fg.taken[name]; ok {
			return fmt.Errorf("%s: service %s: the generated name %s (%s) collides with %s in the same Go package; rename one", loc, s.Desc.FullName(), name, what, prev)
		}
		if prev, ok := mine[name]; ok {
			return fmt.Errorf("%s: service %s: the generated name %s is both %s and %s; rename a method", loc, s.Desc.FullName(), name, prev, what)
		}
		mine[name] = what
		return nil
	}
	for _, n := range []string{svc + "ServiceName", svc + "Handler", "Unimplemented" + svc + "Handler", "Register" + svc + "Handler", svc + "Client", "New" + svc + "Client"} {
		if err := claim(n, "of service "+svc); err != nil {
			return err
		}
	}
	clientMethods := map[string]string{}
	for _, m := range s.Methods {
		mi, err := fg.methodInfo(m)
		if err != nil {
			return err
		}
		what := "of method " + string(m.Desc.Name())
		if err := claim(svc+m.GoName+"Procedure", what); err != nil {
			return err
		}
		names := []string{m.GoName}
		if mi.kind == "unary" {
			if err := claim(svc+m.GoName+"Node", what); err != nil {
				return err
			}
			if mi.cacheSuffix != "" {
				if err := claim(svc+m.GoName+"TreeID", what); err != nil {
					return err
				}
			}
			names = append(names, "Go"+m.GoName, "Then"+m.GoName)
		}
		for _, n := range names {
			if prev, ok := clientMethods[n]; ok {
				return fmt.Errorf("%s: service %s: the client method %s is generated for both %s and method %s; rename one", pos(m.Desc), s.Desc.FullName(), n, prev, m.Desc.Name())
			}
			clientMethods[n] = "method " + string(m.Desc.Name())
		}
	}
	for _, m := range s.Methods { // names taken by other services of the package too
		fg.taken[svc+m.GoName+"Procedure"] = "service " + string(s.Desc.FullName())
	}
	for n, w := range mine {
		fg.taken[n] = w + " of service " + string(s.Desc.FullName())
	}
	return nil
}

// local reports whether m's Go type is in the generated file's package
// (it then has the AppendMsgpack and ReadMsgpack methods).
func (fg *fileGen) local(m *protogen.Message) bool {
	return m.GoIdent.GoImportPath == fg.f.GoImportPath
}

// goType is m's Go type as handlers and clients see it.
func (fg *fileGen) goType(m *protogen.Message) string { return "*" + fg.g.QualifiedGoIdent(m.GoIdent) }

// wireType is the type that carries m in Arbor calls: the message itself,
// or arborproto.Of for a message of another package.
func (fg *fileGen) wireType(m *protogen.Message) string {
	if fg.local(m) {
		return fg.goType(m)
	}
	return fg.g.QualifiedGoIdent(arborprotoPkg.Ident("Of")) + "[" + fg.goType(m) + "]"
}

// wrap is the expression that turns v (a *M) into m's wire type.
func (fg *fileGen) wrap(m *protogen.Message, v string) string {
	if fg.local(m) {
		return v
	}
	return fg.wireType(m) + "{Msg: " + v + "}"
}

func (fg *fileGen) ident(pkg protogen.GoImportPath, name string) string {
	return fg.g.QualifiedGoIdent(pkg.Ident(name))
}

// comments writes c, or a default line when the .proto has none.
func (fg *fileGen) comments(c protogen.Comments, deprecated bool, def ...string) {
	g := fg.g
	for _, l := range def {
		g.P("// ", l)
	}
	if c != "" {
		if len(def) > 0 {
			g.P("//")
		}
		g.P(strings.TrimSuffix(c.String(), "\n"))
	}
	if deprecated {
		g.P("//")
		g.P("// Deprecated: do not use.")
	}
}

// pos names where d is declared as protoc names places in errors,
// file:line:col, or by its file alone when the request has no source info.
func pos(d protoreflect.Descriptor) string {
	f := d.ParentFile()
	if loc := f.SourceLocations().ByDescriptor(d); loc.Path != nil {
		return fmt.Sprintf("%s:%d:%d", f.Path(), loc.StartLine+1, loc.StartColumn+1)
	}
	return f.Path()
}

func deprecated(d protoreflect.Descriptor) bool {
	switch o := d.Options().(type) {
	case *descriptorpb.MethodOptions:
		return o.GetDeprecated()
	case *descriptorpb.ServiceOptions:
		return o.GetDeprecated()
	}
	return false
}
