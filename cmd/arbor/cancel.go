package main

import (
	"context"
	"io"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/tree"
)

const cancelAbout = `Cancels the submitted request tree ID on the server at ADDR. PATH names
the request meant (as 'arbor status' prints it: request,
args.tuple_element2, …; default: the root); cancelling any request stops
the whole tree, and every function it reached sees its context cancelled.
`

// cancel runs the cancel command.
func cancel(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("cancel", "[flags] ADDR ID [PATH]", cancelAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 2 && fs.NArg() != 3 {
		return usageError(fs, stderr, "want ADDR, ID and optionally PATH, got %d argument(s)", fs.NArg())
	}
	path := ""
	if fs.NArg() == 3 {
		path = fs.Arg(2)
	}
	return cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		return tree.Cancel(ctx, c, fs.Arg(1), path)
	})
}

const releaseAbout = `Drops the submitted request tree ID on the server at ADDR, cancelling it
if it still runs. Finished trees are also dropped by the server after a
while.
`

// release runs the release command.
func release(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("release", "[flags] ADDR ID", releaseAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 2 {
		return usageError(fs, stderr, "want ADDR and ID, got %d argument(s)", fs.NArg())
	}
	return cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		return tree.Release(ctx, c, fs.Arg(1))
	})
}
