package codegen_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/arbor-rpc/arbor/codegen"
)

// The protoc path: Debian's protoc runs protoc-gen-arbor (and the pinned
// protoc-gen-go); the service files are byte for byte those arbor gen
// writes, and the message files differ only in the protoc version line.
// protoc 3.21 predates editions, so ed/v1 is left out.
func TestProtocPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds protoc-gen-arbor")
	}
	protoc, err := exec.LookPath("protoc")
	if err != nil {
		t.Fatal("protoc is needed for this test (make tools installs Debian's protobuf-compiler):", err)
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "protoc-gen-arbor")
	if out, err := exec.CommandContext(testContext(t), "go", "build", "-o", plugin, "../cmd/protoc-gen-arbor").CombinedOutput(); err != nil {
		t.Fatalf("building protoc-gen-arbor: %v\n%s", err, out)
	}
	pgg, err := codegen.ProtocGenGo(testContext(t), "")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	protos := []string{"shop/v1/types.proto", "shop/v1/service.proto", "inventory/v1/inventory.proto"}
	args := []string{"-I", "testdata/protos", "-I", "../proto",
		"--plugin=protoc-gen-arbor=" + plugin, "--plugin=protoc-gen-go=" + pgg,
		"--arbor_out=" + out, "--arbor_opt=module=example.com/gentest",
		"--go_out=" + out, "--go_opt=module=example.com/gentest"}
	cmd := exec.CommandContext(testContext(t), protoc, append(args, protos...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("protoc: %v\n%s", err, b)
	}
	protocLine := regexp.MustCompile(`(?m)^// \tprotoc        .*$`)
	n := 0
	for _, f := range generate(t, true) {
		if strings.HasPrefix(f.GetName(), "ed/") {
			continue
		}
		got, err := os.ReadFile(filepath.Join(out, f.GetName()))
		if err != nil {
			t.Errorf("protoc did not write %s: %v", f.GetName(), err)
			continue
		}
		n++
		want := f.GetContent()
		if strings.HasSuffix(f.GetName(), ".pb.go") {
			got = protocLine.ReplaceAll(got, []byte("// \tprotoc        (unknown)"))
		}
		if string(got) != want {
			t.Errorf("%s from protoc differs from arbor gen's", f.GetName())
		}
	}
	if n != 6 {
		t.Fatalf("compared %d files, want 6", n)
	}
}
