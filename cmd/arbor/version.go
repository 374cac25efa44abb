package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// devVersion is the version of a binary built outside a module version
// (go build in a checkout, go run, tests).
const devVersion = "dev"

func version(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", "Prints the version of arbor and of the Go toolchain that built it.\n", stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintf(stdout, "arbor %s (go %s)\n", moduleVersion(), goVersion())
	return exitOK
}

// moduleVersion is the main module's version from the build information,
// or devVersion.
func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return devVersion
}

// goVersion is the toolchain version without its "go" prefix.
func goVersion() string {
	v := runtime.Version()
	if len(v) > 2 && v[:2] == "go" {
		return v[2:]
	}
	return v
}
