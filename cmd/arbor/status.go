package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

const statusAbout = `Prints the status tree of the submitted request tree ID on the server at
ADDR: one request a line, subrequests indented under their parent, as

  PATH UUID "TITLE": STATE[ (cached)][ (N attempts)][: ERROR]

with STATE one of created, subrequests running, running, finished,
failed, cancelled.
`

// status runs the status command.
func status(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "[flags] ADDR ID", statusAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 2 {
		return usageError(fs, stderr, "want ADDR and ID, got %d argument(s)", fs.NArg())
	}
	return cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		st, err := tree.Status(ctx, c, fs.Arg(1))
		if err != nil {
			return err
		}
		return write(stdout, formatStatus(st))
	})
}

// formatStatus writes the status tree one node a line.
func formatStatus(st *resolve.Status) []byte {
	var b bytes.Buffer
	st.Walk(func(s *resolve.Status, depth int) {
		b.WriteString(strings.Repeat("  ", depth))
		fmt.Fprintf(&b, "%s %s", s.Path, s.UUID)
		if s.Title != "" {
			fmt.Fprintf(&b, " %q", s.Title)
		}
		fmt.Fprintf(&b, ": %s", s.State)
		if s.Cached {
			b.WriteString(" (cached)")
		}
		if s.Attempts > 1 {
			fmt.Fprintf(&b, " (%d attempts)", s.Attempts)
		}
		if s.Error != "" {
			fmt.Fprintf(&b, ": %s", strings.ReplaceAll(s.Error, "\n", " "))
		}
		b.WriteByte('\n')
	})
	return b.Bytes()
}
