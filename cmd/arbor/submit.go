package main

import (
	"context"
	"io"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

const submitAbout = `Sends the request tree in FILE (Cradle JSON; - reads standard input) to
the server at ADDR, which starts resolving it in the background, and prints
the tree's id. Follow it with 'arbor status ADDR ID', fetch the result with
'arbor result ADDR ID', stop it with 'arbor cancel ADDR ID'.
`

// submit runs the submit command.
func submit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("submit", "[flags] ADDR FILE|-", submitAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 2 {
		return usageError(fs, stderr, "want ADDR and FILE (or - for standard input), got %d argument(s)", fs.NArg())
	}
	body, err := readRequest(fs.Arg(1))
	if err != nil {
		return printError(stderr, err)
	}
	return cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		id, err := tree.SubmitJSON(ctx, c, body)
		if err != nil {
			return err
		}
		return write(stdout, []byte(id+"\n"))
	})
}

const resultAbout = `Waits for the submitted request tree ID on the server at ADDR to finish
and prints its result as JSON (as 'arbor resolve' does), or its error.
`

// result runs the result command.
func result(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("result", "[flags] ADDR ID", resultAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 2 {
		return usageError(fs, stderr, "want ADDR and ID, got %d argument(s)", fs.NArg())
	}
	return cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		res, err := tree.ResultRaw(ctx, c, fs.Arg(1))
		if err != nil {
			return err
		}
		// A generated function's result prints as protojson, as resolve
		// prints it: the root's function id is in the status tree.
		if st, serr := tree.Status(ctx, c, fs.Arg(1)); serr == nil {
			if js, ok, err := protoViewOf(ctx, c, st.UUID).viewMsgpack(res); ok {
				if err != nil {
					return err
				}
				return write(stdout, append(js, '\n'))
			}
		}
		out, err := request.AppendValueJSON(nil, res)
		if err != nil {
			return arbor.Errorf(arbor.Internal, "printing the result as JSON: %v", err)
		}
		return write(stdout, append(out, '\n'))
	})
}
