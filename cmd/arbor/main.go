// Command arbor serves and calls Arbor functions from the command line.
//
//	arbor serve [--listen ADDR]... [--cert F --key F [--ca F]] [--log-level LEVEL]
//	arbor call [--timeout D] [--cert F --key F] [--ca F] [--server-name N] ADDR FUNCTION [ARG ...]
//	arbor catalog [--timeout D] [--cert F --key F] [--ca F] [--server-name N] ADDR
//	arbor resolve|submit [client flags] ADDR FILE|-
//	arbor status|result|release [client flags] ADDR ID
//	arbor cancel [client flags] ADDR ID [PATH]
//	arbor gen [-I DIR]... [--out DIR] [--messages=true|false] [--paths import|source_relative] FILE.proto...
//	arbor health [client flags] [--service NAME] ADDR
//	arbor bench [client flags] [-c N] [-n N | -d D] [--connections N] [--rate R] [--cluster] [--out FILE] ADDR FUNCTION [ARG ...]
//	arbor version
//
// serve --admin ADDR also serves /metrics, /healthz, /debug/pprof/ and the
// live console there (loopback unless ADDR names a host), printing "admin
// on URL" after the listening lines.
//
// serve offers the demo catalog (add, concat, echo, sleep, fail, and the
// request-tree functions of package demo) on every listener, printing one
// "listening on ADDR" line per listener to stdout, resolves request trees
// with a memory cache and a disk (--cache-dir) or Redis (--redis) cache,
// and shuts down gracefully on SIGINT or SIGTERM.
//
// resolve sends a request tree in Cradle JSON and prints the result as
// JSON; submit starts one in the background and prints its id, which
// status, result, cancel and release take.
//
// call passes each ARG as one JSON value and prints the result as JSON;
// bytes results print as base64 strings, as encoding/json writes []byte.
// A failed call prints "error: CODE: message" to stderr and exits 1.
//
// Addresses are tcp://host:port, tls://host:port, unix:/path (see package
// transport). Exit status: 0 on success, 1 on failure, 2 on a usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `Usage: arbor COMMAND [ARGUMENTS]

Commands:
  serve     serve the demo catalog
  call      call a function and print its result as JSON
  catalog   list a server's functions
  members   list the members of the cluster a server belongs to
  resolve   resolve a request tree (Cradle JSON) and print its result
  submit    start resolving a request tree; print its id
  status    print a submitted tree's status, one request a line
  result    wait for a submitted tree and print its result
  cancel    cancel a submitted tree
  release   drop a submitted tree
  health    print a server's health; exit 0 when serving
  bench     load-test a function: calls/s, latency percentiles, errors
  certs     write a development CA, server and client certificates
  gen       generate Go (messages and Arbor services) from .proto files
  version   print the version
  help      print this help

Run 'arbor COMMAND -h' (or 'arbor help COMMAND') for a command's usage.
Addresses are tcp://host:port, tls://host:port, quic://host:port or unix:/path.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process as usual
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) and returns
// the exit status. Cancelling ctx stops a serve and aborts a call.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "call":
		return call(ctx, rest, stdout, stderr)
	case "catalog":
		return catalog(ctx, rest, stdout, stderr)
	case "resolve":
		return resolveCmd(ctx, rest, stdout, stderr)
	case "submit":
		return submit(ctx, rest, stdout, stderr)
	case "status":
		return status(ctx, rest, stdout, stderr)
	case "result":
		return result(ctx, rest, stdout, stderr)
	case "cancel":
		return cancel(ctx, rest, stdout, stderr)
	case "release":
		return release(ctx, rest, stdout, stderr)
	case "health":
		return healthCmd(ctx, rest, stdout, stderr)
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr)
	case "certs":
		return certs(rest, stdout, stderr)
	case "members":
		return members(ctx, rest, stdout, stderr)
	case "gen":
		return gen(ctx, rest, stdout, stderr)
	case "version":
		return version(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) == 1 && cmd == "help" && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, stdout, stderr) // arbor help COMMAND
		}
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	fmt.Fprintf(stderr, "arbor: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// newFlagSet returns a flag set for a command that reports errors (and its
// usage) on stderr instead of exiting. synopsis and about head the usage.
func newFlagSet(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("arbor "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\n%s", strings.TrimSpace("arbor "+name+" "+synopsis), about)
		var hasFlags bool
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(stderr, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// usageError prints a usage mistake and where to read the command's usage,
// and returns the usage status.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\nRun '%s -h' for usage.\n", fs.Name(), fmt.Sprintf(format, args...), fs.Name())
	return exitUsage
}
