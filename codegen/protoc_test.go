package codegen_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"

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

// protoc-gen-arbor fed a request as protoc feeds it (here, the one
// arbor gen builds, edition 2023 included): it declares proto3 optional
// and editions, and writes arbor gen's bytes; with messages=true it
// writes protoc-gen-go's message files too.
func TestPluginRequestResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds protoc-gen-arbor")
	}
	dir := t.TempDir()
	plugin := filepath.Join(dir, "protoc-gen-arbor")
	if out, err := exec.CommandContext(testContext(t), "go", "build", "-o", plugin, "../cmd/protoc-gen-arbor").CombinedOutput(); err != nil {
		t.Fatalf("building protoc-gen-arbor: %v\n%s", err, out)
	}
	paths := make([]string, len(testProtos))
	for i, p := range testProtos {
		paths[i] = filepath.Join("testdata/protos", p)
	}
	want := map[string]string{}
	for _, f := range generate(t, true) {
		want[f.GetName()] = f.GetContent()
	}
	for _, messages := range []bool{false, true} {
		param := "module=example.com/gentest"
		if messages {
			param += ",messages=true"
		}
		req, err := codegen.Compile(testContext(t), []string{"testdata/protos"}, param, paths...)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := proto.Marshal(req)
		cmd := exec.CommandContext(testContext(t), plugin)
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("protoc-gen-arbor: %v", err)
		}
		var resp pluginpb.CodeGeneratorResponse
		if err := proto.Unmarshal(out, &resp); err != nil || resp.Error != nil {
			t.Fatalf("response: %v, %s", err, resp.GetError())
		}
		if resp.GetSupportedFeatures() != codegen.SupportedFeatures ||
			resp.GetMinimumEdition() != int32(codegen.MinEdition) || resp.GetMaximumEdition() != int32(codegen.MaxEdition) {
			t.Errorf("features %b, editions %d..%d", resp.GetSupportedFeatures(), resp.GetMinimumEdition(), resp.GetMaximumEdition())
		}
		n := 0
		for _, f := range resp.File {
			if !messages && strings.HasSuffix(f.GetName(), ".pb.go") {
				t.Errorf("services only, but %s was written", f.GetName())
			}
			if f.GetContent() != want[f.GetName()] {
				t.Errorf("messages=%v: %s differs from arbor gen's", messages, f.GetName())
			}
			n++
		}
		if wantN := map[bool]int{false: 4, true: 8}[messages]; n != wantN {
			t.Errorf("messages=%v: %d files, want %d", messages, n, wantN)
		}
	}
}
