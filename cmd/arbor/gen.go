package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/arbor-rpc/arbor/codegen"
)

const genAbout = `Generates Go from .proto files, with no protoc: protobuf-go's message types
(FILE.pb.go, by protoc-gen-go at the version Arbor pins, built once into the
user cache) and Arbor's services (FILE.arbor.go: handler interface,
Unimplemented struct, Register…Handler, client, promise and request-tree
forms), for proto2, proto3 and edition 2023.

Files are named as protoc names them: relative to the -I directory holding
them (default "."). The well-known types (google/protobuf/*.proto) and
arbor/v1/options.proto need no -I. Output paths follow go_package as with
protoc-gen-go: --paths=import (the default) writes under --out by import
path (--module strips a prefix); --paths=source_relative writes beside the
.proto's relative path.

Errors in a .proto print as protoc prints them, file:line:col: message, and
exit 1.
`

// gen runs the gen command.
func gen(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("gen", "[flags] FILE.proto ...", genAbout, stderr)
	var includes, opts stringList
	fs.Var(&includes, "I", "import `directory`, repeatable (default .)")
	fs.Var(&includes, "proto_path", "the same as -I")
	out := fs.String("out", ".", "output `directory`")
	messages := fs.Bool("messages", true, "also generate message types with protoc-gen-go (false: services only, beside protoc-gen-go's output)")
	paths := fs.String("paths", "import", "output layout: import or source_relative, as protoc-gen-go's paths=")
	module := fs.String("module", "", "strip this Go import path `prefix` from output paths, as protoc-gen-go's module=")
	fs.Var(&opts, "opt", "a further plugin parameter `key=value` (M…=…, annotate_code), repeatable")
	pgg := fs.String("protoc-gen-go", "", "run this protoc-gen-go `executable` (it must be "+codegen.ProtobufVersion+") instead of building one")
	// Flags may follow files, as with protoc.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(files) == 0 {
		return usageError(fs, stderr, "no .proto files given")
	}
	if *paths != "import" && *paths != "source_relative" {
		return usageError(fs, stderr, "--paths must be import or source_relative, got %q", *paths)
	}
	params := []string{"paths=" + *paths}
	if *module != "" {
		params = append(params, "module="+*module)
	}
	for _, o := range opts {
		if !strings.Contains(o, "=") {
			return usageError(fs, stderr, "--opt %q: want key=value", o)
		}
		params = append(params, o)
	}
	req, err := codegen.Compile(ctx, includes, strings.Join(params, ","), files...)
	if err != nil {
		var ce *codegen.CompileError
		if errors.As(err, &ce) {
			for _, e := range ce.Errors {
				fmt.Fprintln(stderr, e)
			}
			return exitFail
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	generated, err := codegen.Generate(ctx, req, codegen.Options{Messages: *messages, ProtocGenGo: *pgg})
	if err != nil {
		if file, _, ok := strings.Cut(err.Error(), ":"); ok && strings.HasSuffix(file, ".proto") {
			fmt.Fprintln(stderr, err) // file:line:col: message, as the compiler's
		} else {
			fmt.Fprintf(stderr, "error: %v\n", err)
		}
		return exitFail
	}
	if err := codegen.Write(*out, generated); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	return exitOK
}
