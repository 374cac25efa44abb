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
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"

	"github.com/arbor-rpc/arbor/codegen"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Printf("%s (messages by protoc-gen-go %s)\n", filepath.Base(os.Args[0]), codegen.ProtobufVersion)
		return
	}
	var messages bool
	var pgg string
	protogen.Options{ParamFunc: func(name, value string) error {
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
	}}.Run(func(gen *protogen.Plugin) error {
		if err := codegen.GenerateServices(gen); err != nil {
			return err
		}
		if !messages {
			return nil
		}
		files, err := codegen.Generate(context.Background(), gen.Request, codegen.Options{Messages: true, ProtocGenGo: pgg})
		if err != nil {
			return err
		}
		for _, f := range files {
			if filepath.Ext(f.GetName()) == ".go" && !isArborFile(f) {
				g := gen.NewGeneratedFile(f.GetName(), "")
				g.Write([]byte(f.GetContent()))
			}
		}
		return nil
	})
}

// isArborFile reports whether f is one GenerateServices wrote already.
func isArborFile(f *pluginpb.CodeGeneratorResponse_File) bool {
	n := f.GetName()
	return len(n) > len(codegen.FileSuffix) && n[len(n)-len(codegen.FileSuffix):] == codegen.FileSuffix
}
