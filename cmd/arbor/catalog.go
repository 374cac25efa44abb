package main

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/arbor-rpc/arbor"
)

const catalogAbout = `Lists the functions the server at ADDR offers, one per line, as
NAME(ARGUMENT TYPES) RESULT TYPE, e.g. "add(int, int) int".
`

// catalog runs the catalog command.
func catalog(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("catalog", "[flags] ADDR", catalogAbout, stderr)
	timeout := fs.Duration("timeout", defaultTimeout, "give up after `duration`, dial included (0: never)")
	var tf tlsFlags
	tf.register(fs, true)
	if code, ok := parseDialer(fs, args, stderr, &tf); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(fs, stderr, "want exactly one ADDR, got %d argument(s)", fs.NArg())
	}

	ctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	c, err := arbor.Dial(ctx, fs.Arg(0), arbor.WithTransport(tf.config()))
	if err != nil {
		return printError(stderr, timedOut(ctx, err, *timeout))
	}
	defer c.Close()
	fns, err := c.Catalog(ctx)
	if err != nil {
		return printError(stderr, timedOut(ctx, err, *timeout))
	}
	w := bufio.NewWriter(stdout)
	for _, f := range fns {
		fmt.Fprintln(w, f)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	return exitOK
}
