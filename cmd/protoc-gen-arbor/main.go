// Command protoc-gen-arbor is Arbor's generator as a protoc or buf plugin:
// it writes FILE.arbor.go (services, and the methods that carry messages
// as protobuf binary) beside protoc-gen-go's FILE.pb.go, in the same Go
// package; the files are byte for byte those `arbor gen` writes.
//
//	protoc -I . -I $(go list -m -f '{{.Dir}}' github.com/arbor-rpc/arbor)/proto \
//	  --go_out=. --go_opt=paths=source_relative \
//	  --arbor_out=. --arbor_opt=paths=source_relative route_guide.proto
//
// With buf, a buf.gen.yaml (see the README section "Code generation"):
//
//	version: v2
//	plugins:
//	  - local: protoc-gen-go
//	    out: gen
//	    opt: paths=source_relative
//	  - local: protoc-gen-arbor
//	    out: gen
//	    opt: paths=source_relative
//
// Parameters: protogen's (paths, module, M…), and messages=true to also
// generate the message types itself (running protoc-gen-go at the version
// Arbor pins; then leave protoc-gen-go out), protoc_gen_go=PATH to name
// that executable.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/arbor-rpc/arbor/codegen"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Printf("%s (messages by protoc-gen-go %s)\n", filepath.Base(os.Args[0]), codegen.ProtobufVersion)
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "%s is a protoc plugin: run it from protoc or buf (--arbor_out=DIR)\n", filepath.Base(os.Args[0]))
		os.Exit(1)
	}
	if err := run(context.Background(), os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
}

// run reads a CodeGeneratorRequest from in and writes the response to
// out, as protoc expects. Errors in the .proto files go into the
// response, where protoc reports them; run fails only on I/O.
func run(ctx context.Context, in io.Reader, out io.Writer) error {
	b, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var req pluginpb.CodeGeneratorRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	resp := generate(ctx, &req)
	b, err = proto.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = out.Write(b)
	return err
}

// generate runs Arbor's generator, and protoc-gen-go too with
// messages=true.
func generate(ctx context.Context, req *pluginpb.CodeGeneratorRequest) *pluginpb.CodeGeneratorResponse {
	var messages bool
	var pgg string
	gen, err := protogen.Options{ParamFunc: func(name, value string) error {
		switch name {
		case "messages":
			b, err := strconv.ParseBool(value)
			if err != nil {
				return fmt.Errorf("messages=%q: want true or false", value)
			}
			messages = b
		case "protoc_gen_go":
			pgg = value
		default:
			return fmt.Errorf("unknown parameter %q (protoc-gen-arbor takes paths, module, M…, messages and protoc_gen_go)", name)
		}
		return nil
	}}.New(req)
	if err != nil {
		return &pluginpb.CodeGeneratorResponse{Error: proto.String(err.Error())}
	}
	if err := codegen.GenerateServices(gen); err != nil {
		gen.Error(err)
	}
	resp := gen.Response()
	if resp.Error != nil || !messages {
		return resp
	}
	// The message files are protoc-gen-go's output as is, names and all.
	files, err := codegen.GenerateMessages(ctx, req, codegen.Options{ProtocGenGo: pgg})
	if err != nil {
		return &pluginpb.CodeGeneratorResponse{Error: proto.String(err.Error())}
	}
	resp.File = append(resp.File, files...)
	return resp
}
