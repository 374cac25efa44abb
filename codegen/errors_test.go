package codegen_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/arbor-rpc/arbor/codegen"
)

// compileSources compiles .proto sources held in memory and generates
// services for them.
func compileSources(t *testing.T, srcs map[string]string, names ...string) error {
	t.Helper()
	res := &protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(srcs)}
	req, err := codegen.CompileNames(testContext(t), res, "", names...)
	if err != nil {
		return err
	}
	_, err = codegen.Generate(testContext(t), req, codegen.Options{})
	return err
}

const goPkg = "option go_package = \"example.com/x;x\";\n"

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string // lines, in order
	}{
		{"syntax", "syntax = \"proto3\";\nmessage A { int32 x = 1 }\n",
			[]string{"a.proto:2:25: syntax error: expecting ';'"}},
		{"unknown type", "syntax = \"proto3\";\nmessage A {\n  Missing x = 1;\n}\n",
			[]string{"a.proto:3:3: field A.x: unknown type Missing"}},
		{"two errors", "syntax = \"proto3\";\nmessage A {\n  Missing x = 1;\n  Gone y = 2;\n}\n",
			[]string{"a.proto:3:3: field A.x: unknown type Missing", "a.proto:4:3: field A.y: unknown type Gone"}},
		{"missing import", "syntax = \"proto3\";\nimport \"nope.proto\";\n",
			[]string{"a.proto:2:8: "}},
		{"duplicate field number", "syntax = \"proto3\";\nmessage A {\n  int32 x = 1;\n  int32 y = 1;\n}\n",
			[]string{"a.proto:4:13: "}},
		{"unsupported edition", "edition = \"2099\";\n",
			[]string{"a.proto:1:11: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := compileSources(t, map[string]string{"a.proto": tc.src}, "a.proto")
			var ce *codegen.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T); want a *CompileError", err, err)
			}
			lines := strings.Split(ce.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("errors:\n%s\nwant %d line(s)", ce, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d = %q, want it to start with %q", i, lines[i], w)
				}
			}
		})
	}
}

// Constructs Arbor cannot generate are refused with an error naming them,
// never a panic or code that does not compile.
func TestUnsupportedConstructs(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"cache on a stream", "syntax = \"proto3\";\nimport \"arbor/v1/options.proto\";\n" + goPkg +
			"message A {}\nservice S {\n  rpc L(A) returns (stream A) { option (arbor.v1.cache) = CACHE_LEVEL_MEM; }\n}\n",
			"method S.L: (arbor.v1.cache) is set on a server-streaming method; request trees cache unary methods only"},
		{"field colliding with a method", "syntax = \"proto3\";\n" + goPkg + "message A { int32 append_msgpack = 1; }\n",
			"field append_msgpack becomes Go field AppendMsgpack, which collides"},
		{"oneof colliding with a method", "syntax = \"proto3\";\n" + goPkg + "message A { oneof append_msgpack { int32 x = 1; } }\n",
			"oneof append_msgpack becomes Go field AppendMsgpack, which collides"},
		{"proto3 optional field colliding with a method", "syntax = \"proto3\";\n" + goPkg + "message A { optional int32 read_msgpack = 1; }\n",
			"field read_msgpack becomes Go field ReadMsgpack, which collides"},
		{"generated name colliding with a message", "syntax = \"proto3\";\n" + goPkg + "message SClient {}\nservice S { rpc M(SClient) returns (SClient); }\n",
			"the generated name SClient (of service S) collides with message SClient"},
		{"client method colliding", "syntax = \"proto3\";\n" + goPkg + "message A {}\nservice S {\n  rpc M(A) returns (A);\n  rpc GoM(A) returns (A);\n}\n",
			"the client method GoM is generated for both method M and method GoM"},
		{"no go_package", "syntax = \"proto3\";\nmessage A {}\n", "unable to determine Go import path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := compileSources(t, map[string]string{"a.proto": tc.src}, "a.proto")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

// proto2 (required, defaults, extensions, groups) generates and builds
// like the rest: Arbor's code does not look at fields.
func TestProto2(t *testing.T) {
	src := "syntax = \"proto2\";\n" + goPkg + `
message A {
  required int32 x = 1 [default = 7];
  optional group G = 2 { optional string s = 3; }
  extensions 100 to 199;
}
extend A { optional string tag = 100; }
service S { rpc M(A) returns (A); }
`
	if err := compileSources(t, map[string]string{"a.proto": src}, "a.proto"); err != nil {
		t.Fatal(err)
	}
}

func TestFilesOutsideImportPaths(t *testing.T) {
	_, err := codegen.Compile(testContext(t), []string{"testdata/protos/shop"}, "", "testdata/protos/inventory/v1/inventory.proto")
	if err == nil || !strings.Contains(err.Error(), "does not reside within any import path") {
		t.Fatalf("err = %v", err)
	}
	_, err = codegen.Compile(testContext(t), nil, "", "testdata/nope.proto")
	if err == nil || !strings.Contains(err.Error(), "testdata/nope.proto") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWriteRefusesEscapingNames(t *testing.T) {
	for _, name := range []string{"../x.go", "/abs.go", "a/../../x.go", ""} {
		err := codegen.Write(t.TempDir(), []*pluginpb.CodeGeneratorResponse_File{{Name: &name}})
		if err == nil {
			t.Errorf("Write(%q) succeeded", name)
		}
	}
}

// A construct Arbor refuses is named by file:line:col, as protoc names
// errors (arbor gen's help says so): the field, oneof, method or service.
func TestUnsupportedConstructsNamePosition(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"cache on a stream", "syntax = \"proto3\";\nimport \"arbor/v1/options.proto\";\n" + goPkg +
			"message A {}\nservice S {\n  rpc L(A) returns (stream A) { option (arbor.v1.cache) = CACHE_LEVEL_MEM; }\n}\n",
			"a.proto:6:3: method S.L:"},
		{"field", "syntax = \"proto3\";\n" + goPkg + "message A {\n  int32 append_msgpack = 1;\n}\n",
			"a.proto:4:3: field append_msgpack"},
		{"oneof", "syntax = \"proto3\";\n" + goPkg + "message A {\n  oneof read_msgpack { int32 x = 1; }\n}\n",
			"a.proto:4:3: oneof read_msgpack"},
		{"service name", "syntax = \"proto3\";\n" + goPkg + "message SClient {}\nservice S { rpc M(SClient) returns (SClient); }\n",
			"a.proto:4:1: service S:"},
		{"client method", "syntax = \"proto3\";\n" + goPkg + "message A {}\nservice S {\n  rpc M(A) returns (A);\n  rpc GoM(A) returns (A);\n}\n",
			"a.proto:6:3: service S:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := compileSources(t, map[string]string{"a.proto": tc.src}, "a.proto")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to start with %q", err, tc.want)
			}
		})
	}
}

// A file given on the command line that an earlier import path shadows
// (holding another file by the same name) is refused, as protoc refuses
// it, rather than compiling that other file in its place.
func TestShadowedInputRefused(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
		src := "syntax = \"proto3\";\noption go_package = \"example.com/" + p + "\";\nmessage From" + strings.ToUpper(p) + " {}\n"
		if err := os.WriteFile(filepath.Join(dir, p, "x.proto"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	_, err := codegen.Compile(testContext(t), []string{a, b}, "", filepath.Join(b, "x.proto"))
	if err == nil || !strings.Contains(err.Error(), "shadowed") || !strings.Contains(err.Error(), filepath.Join(a, "x.proto")) {
		t.Fatalf("err = %v; want b/x.proto refused as shadowed by a/x.proto", err)
	}
	// The file the first import path holds is fine.
	if _, err := codegen.Compile(testContext(t), []string{a, b}, "", filepath.Join(a, "x.proto")); err != nil {
		t.Fatal(err)
	}
}
