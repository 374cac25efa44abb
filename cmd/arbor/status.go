package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

const statusAbout = `Prints the status tree of the submitted request tree ID on the server at
ADDR: one request a line, subrequests indented under their parent, as

  PATH UUID "TITLE": STATE[ on NODE][ (moved from NODES)][ (cached)][ (N attempts)][: ERROR]

with STATE one of created, subrequests running, running, finished,
failed, cancelled, skipped; NODE is the cluster member that resolves the
request, NODES those it moved from when they failed.

With --watch, prints the status tree, then each change of a request as
the server pushes it (one call, no polling), one line each in the form
above, unindented, then "done" or "failed: ERROR" when the tree ends
(exit status 1 if it failed). Use --timeout 0 for trees that take long.
`

// status runs the status command.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "[flags] ADDR ID", statusAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	watchFlag := fs.Bool("watch", false, "print each change as it happens, until the tree ends")
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 2 {
		return usageError(fs, stderr, "want ADDR and ID, got %d argument(s)", fs.NArg())
	}
	return cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		if *watchFlag {
			return watchStatus(ctx, c, fs.Arg(1), stdout)
		}
		st, err := tree.Status(ctx, c, fs.Arg(1))
		if err != nil {
			return err
		}
		return write(stdout, formatStatus(st))
	})
}

// watchStatus prints the watch stream of tree id: the status tree, each
// change, and how the tree ended.
func watchStatus(ctx context.Context, c *arbor.Client, id string, stdout io.Writer) error {
	s, err := tree.WatchRequest(ctx, c, id)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ev, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return arbor.Errorf(arbor.Unavailable, "the watch ended before the tree did")
		}
		if err != nil {
			return err
		}
		var b bytes.Buffer
		switch ev.Kind {
		case tree.WatchStatus:
			if ev.Status != nil {
				b.Write(formatStatus(ev.Status))
			}
		case tree.WatchNode:
			if ev.Status != nil {
				formatLine(&b, ev.Status)
			}
		case tree.WatchDone:
			if ev.Err != "" {
				fmt.Fprintf(&b, "failed: %s\n", strings.ReplaceAll(ev.Err, "\n", " "))
				if err := write(stdout, b.Bytes()); err != nil {
					return err
				}
				// Printed on stdout already: stderr just says so.
				return writeError{errors.New("the tree failed")}
			}
			b.WriteString("done\n")
			return write(stdout, b.Bytes())
		}
		if err := write(stdout, b.Bytes()); err != nil {
			return err
		}
	}
}

// formatStatus writes the status tree one node a line.
func formatStatus(st *resolve.Status) []byte {
	var b bytes.Buffer
	st.Walk(func(s *resolve.Status, depth int) {
		b.WriteString(strings.Repeat("  ", depth))
		formatLine(&b, s)
	})
	return b.Bytes()
}

// formatLine writes one request's line of a status tree.
func formatLine(b *bytes.Buffer, s *resolve.Status) {
	fmt.Fprintf(b, "%s %s", s.Path, s.UUID)
	if s.Title != "" {
		fmt.Fprintf(b, " %q", s.Title)
	}
	fmt.Fprintf(b, ": %s", s.State)
	if s.Node != "" {
		fmt.Fprintf(b, " on %s", s.Node)
	}
	if len(s.Tried) > 0 {
		fmt.Fprintf(b, " (moved from %s)", strings.Join(s.Tried, ", "))
	}
	if s.Cached {
		b.WriteString(" (cached)")
	}
	if s.Attempts > 1 {
		fmt.Fprintf(b, " (%d attempts)", s.Attempts)
	}
	if s.Error != "" {
		fmt.Fprintf(b, ": %s", strings.ReplaceAll(s.Error, "\n", " "))
	}
	b.WriteByte('\n')
}
