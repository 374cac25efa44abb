package codegen_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor/codegen"
)

// writePackage writes a 20-file proto package: each file imports the one
// before it and the well-known types, and defines messages, an enum and a
// service with every kind of method.
func writePackage(tb testing.TB, dir string, n int) []string {
	tb.Helper()
	var paths []string
	for i := range n {
		var b strings.Builder
		fmt.Fprintf(&b, "syntax = \"proto3\";\npackage big.v1;\noption go_package = \"example.com/big/v1;bigv1\";\n")
		b.WriteString("import \"google/protobuf/timestamp.proto\";\n")
		if i > 0 {
			fmt.Fprintf(&b, "import \"big/v1/f%02d.proto\";\n", i-1)
		}
		for m := range 5 {
			fmt.Fprintf(&b, "// M%d_%d is message %d of file %d.\nmessage M%d_%d {\n  string name = 1;\n  int64 n = 2;\n  map<string, int32> tags = 3;\n  google.protobuf.Timestamp at = 4;\n  oneof v { string s = 5; bytes raw = 6; }\n  repeated M%d_%d children = 7;\n", m, i, m, i, i, m, i, m)
			if i > 0 {
				fmt.Fprintf(&b, "  M%d_%d prev = 8;\n", i-1, m)
			}
			b.WriteString("}\n")
		}
		fmt.Fprintf(&b, "enum E%d { E%d_UNSPECIFIED = 0; E%d_ONE = 1; }\n", i, i, i)
		fmt.Fprintf(&b, "service S%d {\n  rpc U(M%d_0) returns (M%d_1);\n  rpc SS(M%d_0) returns (stream M%d_1);\n  rpc CS(stream M%d_0) returns (M%d_1);\n  rpc BS(stream M%d_0) returns (stream M%d_1);\n}\n", i, i, i, i, i, i, i, i, i)
		p := filepath.Join(dir, "big", "v1", fmt.Sprintf("f%02d.proto", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// BenchmarkGen20Files is `arbor gen` on a 20-file package: compile,
// generate messages (protoc-gen-go, built beforehand) and services,
// write. The bar: under 1 s.
func BenchmarkGen20Files(b *testing.B) {
	dir := b.TempDir()
	paths := writePackage(b, dir, 20)
	ctx := testContext(b)
	exe, err := codegen.ProtocGenGo(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	b.ResetTimer()
	for range b.N {
		req, err := codegen.Compile(ctx, []string{dir}, "module=example.com/big", paths...)
		if err != nil {
			b.Fatal(err)
		}
		files, err := codegen.Generate(ctx, req, codegen.Options{Messages: true, ProtocGenGo: exe})
		if err != nil {
			b.Fatal(err)
		}
		if len(files) != 40 {
			b.Fatalf("%d files", len(files))
		}
		if err := codegen.Write(out, files); err != nil {
			b.Fatal(err)
		}
	}
}

// The 20-file package generates code that builds (checked once, outside
// the benchmark).
func TestGen20FilesBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	dir := t.TempDir()
	paths := writePackage(t, dir, 20)
	req, err := codegen.Compile(testContext(t), []string{dir}, "module=example.com/big", paths...)
	if err != nil {
		t.Fatal(err)
	}
	files, err := codegen.Generate(testContext(t), req, codegen.Options{Messages: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 40 {
		t.Fatalf("%d files, want 40", len(files))
	}
	buildModule(t, files, "example.com/big", "")
}
