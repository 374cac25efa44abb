package codegen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"github.com/bufbuild/protocompile/options"
	"github.com/bufbuild/protocompile/protoutil"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"

	arborv1 "github.com/arbor-rpc/arbor/proto/arbor/v1"
)

// OptionsProto is the import path of Arbor's method options, which
// Compile resolves with no -I.
const OptionsProto = "arbor/v1/options.proto"

// MaxErrors bounds the errors one Compile reports.
const MaxErrors = 50

// CompileError is a .proto that did not compile: each line is
// "file:line:col: message", as protoc prints it.
type CompileError struct {
	Errors []error
}

// Error is the errors, one a line.
func (e *CompileError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, err := range e.Errors {
		lines[i] = err.Error()
	}
	return strings.Join(lines, "\n")
}

// Compile parses and links the .proto files named by paths (on disk,
// found as protoc finds them: each must lie under one of importPaths,
// which default to "."), and returns the CodeGeneratorRequest protoc
// would send a plugin for them, with parameter as its parameter string.
// Errors in the files come back as a *CompileError.
func Compile(ctx context.Context, importPaths []string, parameter string, paths ...string) (*pluginpb.CodeGeneratorRequest, error) {
	if len(paths) == 0 {
		return nil, errors.New("no .proto files given")
	}
	if len(importPaths) == 0 {
		importPaths = []string{"."}
	}
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		name, err := importName(importPaths, p)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return CompileNames(ctx, &protocompile.SourceResolver{ImportPaths: importPaths}, parameter, names...)
}

// importName is the name a file on disk has relative to the first import
// path that holds it, as protoc names it. As protoc does, it refuses a
// file that an earlier import path shadows: one holding another file of
// that name, which is what the name would resolve to.
func importName(importPaths []string, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	for i, ip := range importPaths {
		dir, err := filepath.Abs(ip)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(dir, abs)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			for _, earlier := range importPaths[:i] {
				other := filepath.Join(earlier, rel)
				if ofi, err := os.Stat(other); err == nil && !os.SameFile(fi, ofi) {
					return "", fmt.Errorf("%s: input is shadowed in the import paths (-I) by %q; either use the latter file as your input or reorder the import paths so that the former file's location comes first", path, other)
				}
			}
			return filepath.ToSlash(rel), nil
		}
	}
	return "", fmt.Errorf("%s: file does not reside within any import path given with -I (%s); protoc requires that too", path, strings.Join(importPaths, ", "))
}

// CompileNames is Compile over any protocompile resolver, with the files
// named as imports name them (tests compile sources held in memory).
func CompileNames(ctx context.Context, res protocompile.Resolver, parameter string, names ...string) (*pluginpb.CodeGeneratorRequest, error) {
	var errs []error
	rep := reporter.NewReporter(func(err reporter.ErrorWithPos) error {
		errs = append(errs, err)
		if len(errs) >= MaxErrors {
			return err
		}
		return nil
	}, nil)
	comp := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(withArborImports(res)),
		SourceInfoMode: protocompile.SourceInfoStandard,
		Reporter:       rep,
	}
	files, err := comp.Compile(ctx, names...)
	if len(errs) > 0 {
		return nil, &CompileError{Errors: errs}
	}
	if err != nil {
		var pe protocompile.PanicError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s: the compiler failed on this file (please report it): %v", pe.File, pe.Value)
		}
		return nil, &CompileError{Errors: []error{err}}
	}
	return buildRequest(files, parameter)
}

// withArborImports resolves arbor/v1/options.proto from the descriptor
// linked into this program when res does not have it, the way
// WithStandardImports resolves the well-known types.
func withArborImports(res protocompile.Resolver) protocompile.Resolver {
	return protocompile.ResolverFunc(func(name string) (protocompile.SearchResult, error) {
		r, err := res.FindFileByPath(name)
		if err != nil && name == OptionsProto {
			return protocompile.SearchResult{Desc: arborv1.File_arbor_v1_options_proto}, nil
		}
		return r, err
	})
}

// buildRequest lays the compiled files out as protoc does for a plugin:
// every file and its imports in proto_file, dependencies first, options
// of source retention stripped; source info (comments) kept for the files
// to generate, which also come with every option in
// source_file_descriptors.
func buildRequest(files linker.Files, parameter string) (*pluginpb.CodeGeneratorRequest, error) {
	req := &pluginpb.CodeGeneratorRequest{}
	if parameter != "" {
		req.Parameter = proto.String(parameter)
	}
	generate := map[string]bool{}
	for _, f := range files {
		generate[f.Path()] = true
		req.FileToGenerate = append(req.FileToGenerate, f.Path())
	}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor) error
	add = func(fd protoreflect.FileDescriptor) error {
		if seen[fd.Path()] {
			return nil
		}
		seen[fd.Path()] = true
		imps := fd.Imports()
		for i := 0; i < imps.Len(); i++ {
			if err := add(imps.Get(i).FileDescriptor); err != nil {
				return err
			}
		}
		full := proto.Clone(protoutil.ProtoFromFileDescriptor(fd)).(*descriptorpb.FileDescriptorProto)
		if !generate[fd.Path()] {
			full.SourceCodeInfo = nil
		}
		stripped, err := options.StripSourceRetentionOptionsFromFile(full)
		if err != nil {
			return fmt.Errorf("%s: %w", fd.Path(), err)
		}
		req.ProtoFile = append(req.ProtoFile, stripped)
		if generate[fd.Path()] {
			req.SourceFileDescriptors = append(req.SourceFileDescriptors, full)
		}
		return nil
	}
	for _, f := range files {
		if err := add(f); err != nil {
			return nil, err
		}
	}
	return req, nil
}
