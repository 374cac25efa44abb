package codegen_test

import (
	"testing"

	"github.com/bufbuild/protocompile"

	"github.com/arbor-rpc/arbor/codegen"
)

// Generated code compiles, and its functions take their messages, when
// the names of its parameters and variables are those of what it refers
// to: a package of messages named x (the client's receiver), req, in, m…,
// a message named R (the type parameter of …Node); and a oneof member
// named like a method Arbor adds, which is no field of the message.
func TestGeneratedNamesDoNotShadow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	srcs := map[string]string{
		"b.proto": "syntax = \"proto3\";\npackage b;\noption go_package = \"example.com/gentest/b\";\n" +
			"message R { oneof o { int32 read_msgpack = 1; string append_msgpack = 2; } }\n" +
			"service S { rpc Get(R) returns (R); }\n",
	}
	var services string
	for _, pkg := range []string{"x", "ctx", "req", "res", "err", "r", "impl", "opts", "sd", "in", "out", "arg", "m", "ok"} {
		srcs[pkg+".proto"] = "syntax = \"proto3\";\npackage " + pkg + ";\noption go_package = \"example.com/gentest/" + pkg + "\";\nmessage M {}\n"
		services += "import \"" + pkg + ".proto\";\n" +
			"service S" + pkg + " {\n" +
			"  rpc U(" + pkg + ".M) returns (" + pkg + ".M) { option (arbor.v1.cache) = CACHE_LEVEL_MEM; }\n" +
			"  rpc SS(" + pkg + ".M) returns (stream " + pkg + ".M);\n" +
			"  rpc CS(stream " + pkg + ".M) returns (" + pkg + ".M);\n" +
			"  rpc BS(stream " + pkg + ".M) returns (stream " + pkg + ".M);\n" +
			"}\n"
	}
	srcs["svc.proto"] = "syntax = \"proto3\";\npackage svc;\noption go_package = \"example.com/gentest/svc\";\n" +
		"import \"arbor/v1/options.proto\";\n" + services
	names := []string{"b.proto", "svc.proto"}
	for n := range srcs {
		if n != "b.proto" && n != "svc.proto" {
			names = append(names, n)
		}
	}
	res := &protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(srcs)}
	req, err := codegen.CompileNames(testContext(t), res, "module=example.com/gentest", names...)
	if err != nil {
		t.Fatal(err)
	}
	files, err := codegen.Generate(testContext(t), req, codegen.Options{Messages: true})
	if err != nil {
		t.Fatal(err)
	}
	buildModule(t, files, "example.com/gentest", `package gentest

import (
	"testing"

	"example.com/gentest/b"
	"example.com/gentest/svc"
	"example.com/gentest/x"
)

func TestNodes(t *testing.T) {
	if b.SGetNode(&b.R{}) == nil || svc.SxUNode(&x.M{}) == nil {
		t.Fatal("no node")
	}
}
`)
}
