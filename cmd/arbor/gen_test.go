package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/codegen"
)

// generatedTrees are the checked-in generated files: each .proto, where
// arbor gen writes its Go (paths=source_relative under out, -I dir).
var generatedTrees = []struct{ include, proto, out string }{
	{"../../examples/routeguide", "../../examples/routeguide/routeguide/route_guide.proto", "routeguide"},
	{"../../internal", "../../internal/demo/greeter/greeter.proto", "demo/greeter"},
	{"../../proto", "../../proto/arbor/v1/options.proto", "arbor/v1"},
}

var (
	pggOnce sync.Once
	pggPath string
	pggErr  error
)

// protocGenGo builds the pinned protoc-gen-go once for these tests. They
// run with a scratch user cache directory (TestMain), so the go command
// is pointed back at the real build cache, where protobuf-go is built
// already.
func protocGenGo(t *testing.T) string {
	t.Helper()
	pggOnce.Do(func() {
		if os.Getenv("GOCACHE") == "" {
			if home, err := os.UserHomeDir(); err == nil {
				os.Setenv("GOCACHE", filepath.Join(home, ".cache", "go-build"))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		pggPath, pggErr = codegen.ProtocGenGo(ctx, "")
	})
	if pggErr != nil {
		t.Fatal(pggErr)
	}
	return pggPath
}

// The checked-in generated code is what arbor gen writes now (make test
// runs this; regenerate with make gen).
func TestGeneratedCodeUpToDate(t *testing.T) {
	for _, g := range generatedTrees {
		dir := t.TempDir()
		code, _, stderr := runArbor(testContext(t), "gen", "--protoc-gen-go", protocGenGo(t), "-I", g.include, "--paths=source_relative", "--out", dir, g.proto)
		if code != exitOK {
			t.Fatalf("arbor gen %s = %d: %s", g.proto, code, stderr)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, g.out, "*.go"))
		if len(matches) == 0 {
			t.Fatalf("arbor gen %s wrote nothing under %s", g.proto, g.out)
		}
		for _, m := range matches {
			got, _ := os.ReadFile(m)
			checked := filepath.Join(g.include, g.out, filepath.Base(m))
			want, err := os.ReadFile(checked)
			if err != nil || string(got) != string(want) {
				t.Errorf("%s is out of date (or missing): run make gen", checked)
			}
		}
	}
}

func TestGenErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.proto")
	os.WriteFile(bad, []byte("syntax = \"proto3\";\nmessage A { int32 x = 1 }\n"), 0o644)
	code, stdout, stderr := runArbor(testContext(t), "gen", "-I", dir, "--out", dir, bad)
	if code != exitFail || stdout != "" || stderr != "bad.proto:2:25: syntax error: expecting ';'\n" {
		t.Errorf("arbor gen bad.proto = %d, %q, %q; want 1 and protoc's file:line:col: message", code, stdout, stderr)
	}
	// The generator's errors too: a field named like a method Arbor adds.
	clash := filepath.Join(dir, "clash.proto")
	os.WriteFile(clash, []byte("syntax = \"proto3\";\noption go_package = \"example.com/clash\";\nmessage A {\n  int32 append_msgpack = 1;\n}\n"), 0o644)
	code, _, stderr = runArbor(testContext(t), "gen", "-I", dir, "--out", dir, clash)
	if code != exitFail || !strings.HasPrefix(stderr, "clash.proto:4:3: field append_msgpack") {
		t.Errorf("arbor gen clash.proto = %d, %q; want 1 and file:line:col: message", code, stderr)
	}
	code, _, stderr = runArbor(testContext(t), "gen", "--out", dir)
	if code != exitUsage || !strings.Contains(stderr, "no .proto files given") {
		t.Errorf("arbor gen with no files = %d, %q", code, stderr)
	}
	code, _, stderr = runArbor(testContext(t), "gen", "--paths=nope", bad)
	if code != exitUsage || !strings.Contains(stderr, "--paths must be import or source_relative") {
		t.Errorf("arbor gen --paths=nope = %d, %q", code, stderr)
	}
	// A file generated then: only the services.
	ok := filepath.Join(dir, "ok.proto")
	os.WriteFile(ok, []byte("syntax = \"proto3\";\noption go_package = \"example.com/ok\";\nmessage A {}\nservice S { rpc M(A) returns (A); }\n"), 0o644)
	code, _, stderr = runArbor(testContext(t), "gen", "-I", dir, "--messages=false", "--out", dir, ok)
	if code != exitOK {
		t.Fatalf("arbor gen ok.proto = %d, %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "example.com/ok/ok.arbor.go")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "example.com/ok/ok.pb.go")); err == nil {
		t.Error("--messages=false wrote ok.pb.go")
	}
}

// serve --http serves the demo's generated Greeter to Connect JSON over
// HTTP/1.1, and arbor call prints its results as protojson.
func TestServeHTTPAndProtoJSON(t *testing.T) {
	ctx := testContext(t)
	var addr, web string
	serveUntil(t, []string{"--listen", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0", "--cache-dir", ""}, func(line string) bool {
		if a, ok := strings.CutPrefix(line, "http listening on "); ok {
			web = a
		} else if a, ok := strings.CutPrefix(line, "listening on "); ok {
			addr = a
		}
		return addr != "" && web != ""
	})
	req, _ := http.NewRequestWithContext(ctx, "POST", web+"/demo.v1.Greeter/SayHello", strings.NewReader(`{"name":"web"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"message":"Hello, web!"`) {
		t.Fatalf("POST SayHello = %d %s", resp.StatusCode, body)
	}
	code, stdout, stderr := runArbor(ctx, "call", addr, "/demo.v1.Greeter/SayHello", `{"name":"cli"}`)
	if code != exitOK || !strings.HasPrefix(stdout, `{"message":"Hello, cli!","at":"`) {
		t.Errorf("arbor call SayHello = %d, %q, %q", code, stdout, stderr)
	}
	code, stdout, _ = runArbor(ctx, "call", addr, "/demo.v1.Greeter/SayHellos", `{"name":"cli","count":2}`)
	if code != exitOK || strings.Count(stdout, "\n") != 2 || !strings.Contains(stdout, `"message":"Hello #2, cli!"`) {
		t.Errorf("arbor call SayHellos = %d, %q", code, stdout)
	}
	// A Cradle JSON tree takes the message as JSON and prints protojson.
	treeFile := filepath.Join(t.TempDir(), "tree.json")
	os.WriteFile(treeFile, []byte(`{"uuid": "/demo.v1.Greeter/SayHello", "args": {"tuple_element0": {"name": "tree"}}}`), 0o644)
	code, stdout, stderr = runArbor(ctx, "resolve", addr, treeFile)
	if code != exitOK || !strings.HasPrefix(stdout, `{"message":"Hello, tree!","at":"`) {
		t.Errorf("arbor resolve = %d, %q, %q", code, stdout, stderr)
	}
	code, _, stderr = runArbor(ctx, "call", addr, "/demo.v1.Greeter/SayHello", `{"nme":"cli"}`)
	if code != exitFail || !strings.Contains(stderr, "InvalidArgument") || !strings.Contains(stderr, `unknown field "nme"`) {
		t.Errorf("arbor call with a misspelt field = %d, %q", code, stderr)
	}
}
