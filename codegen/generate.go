package codegen

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/pluginpb"
)

// Options configure Generate.
type Options struct {
	// Messages also generates the message types (FILE.pb.go) with
	// protoc-gen-go; otherwise only FILE.arbor.go is written, for use
	// beside protoc-gen-go's output.
	Messages bool
	// ProtocGenGo is the protoc-gen-go executable to run; it must be
	// ProtobufVersion. Empty: built once into CacheDir (ProtocGenGo).
	ProtocGenGo string
	// CacheDir is where ProtocGenGo builds protoc-gen-go (default: the
	// user's cache directory).
	CacheDir string
}

// ArborParams are the plugin parameters Arbor's generator reads itself;
// the rest (paths, module, M…) are protogen's, as for protoc-gen-go.
var ArborParams = []string{"messages", "protoc_gen_go"}

// Generate generates the Go files for req, sorted by name: Arbor's
// services and message methods always, the message types too with
// opts.Messages.
func Generate(ctx context.Context, req *pluginpb.CodeGeneratorRequest, opts Options) ([]*pluginpb.CodeGeneratorResponse_File, error) {
	// Arbor's generator reads the request as a plugin reads protoc's: from
	// its encoding, so that arbor gen and protoc-gen-arbor see the same
	// thing and write the same bytes.
	wire, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	var own pluginpb.CodeGeneratorRequest
	if err := proto.Unmarshal(wire, &own); err != nil {
		return nil, err
	}
	resp, err := RunServices(&own)
	if err != nil {
		return nil, err
	}
	files := resp.File
	if opts.Messages {
		msgs, err := GenerateMessages(ctx, req, opts)
		if err != nil {
			return nil, err
		}
		files = append(files, msgs...)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if f.InsertionPoint != nil {
			return nil, fmt.Errorf("%s: insertion points are not supported", f.GetName())
		}
		if seen[f.GetName()] {
			return nil, fmt.Errorf("%s: generated twice", f.GetName())
		}
		seen[f.GetName()] = true
	}
	slices.SortFunc(files, func(a, b *pluginpb.CodeGeneratorResponse_File) int { return strings.Compare(a.GetName(), b.GetName()) })
	return files, nil
}

// RunServices runs GenerateServices on req as a plugin would, with the
// parameters protogen knows (paths, module, M…) and Arbor's ignored here.
func RunServices(req *pluginpb.CodeGeneratorRequest) (*pluginpb.CodeGeneratorResponse, error) {
	gen, err := protogen.Options{ParamFunc: ignoreArborParams}.New(req)
	if err != nil {
		return nil, err
	}
	if err := GenerateServices(gen); err != nil {
		return nil, err
	}
	resp := gen.Response()
	if resp.Error != nil {
		return nil, fmt.Errorf("%s", resp.GetError())
	}
	return resp, nil
}

func ignoreArborParams(name, _ string) error {
	if slices.Contains(ArborParams, name) {
		return nil
	}
	return fmt.Errorf("unknown parameter %q (Arbor's are %s; protogen's are paths, module, annotate_code and M…)", name, strings.Join(ArborParams, ", "))
}

// GenerateMessages runs protoc-gen-go (opts.ProtocGenGo, or the one
// ProtocGenGo builds) on req, without Arbor's parameters, and returns its
// files: the message types.
func GenerateMessages(ctx context.Context, req *pluginpb.CodeGeneratorRequest, opts Options) ([]*pluginpb.CodeGeneratorResponse_File, error) {
	exe := opts.ProtocGenGo
	if exe == "" {
		var err error
		if exe, err = ProtocGenGo(ctx, opts.CacheDir); err != nil {
			return nil, err
		}
	}
	if err := checkProtocGenGo(ctx, exe); err != nil {
		return nil, err
	}
	goReq := proto.Clone(req).(*pluginpb.CodeGeneratorRequest)
	goReq.Parameter = proto.String(StripParams(req.GetParameter(), ArborParams...))
	if goReq.GetParameter() == "" {
		goReq.Parameter = nil
	}
	resp, err := runPlugin(ctx, exe, goReq)
	if err != nil {
		return nil, err
	}
	return resp.File, nil
}

// StripParams removes the named keys from a plugin parameter string
// ("k=v,k2=v2").
func StripParams(param string, names ...string) string {
	var keep []string
	for _, p := range strings.Split(param, ",") {
		if p == "" {
			continue
		}
		k, _, _ := strings.Cut(p, "=")
		if !slices.Contains(names, strings.TrimSpace(k)) {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, ",")
}

// Write writes files under dir, creating directories as needed; a file
// whose content is unchanged is left alone. Names must be relative and
// stay inside dir.
func Write(dir string, files []*pluginpb.CodeGeneratorResponse_File) error {
	for _, f := range files {
		name := f.GetName()
		clean := path.Clean(name)
		if name == "" || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return fmt.Errorf("generated file name %q is not a relative path inside the output directory", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(clean))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, []byte(f.GetContent())) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.GetContent()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
