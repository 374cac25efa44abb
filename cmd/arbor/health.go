package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/health"
)

const healthAbout = `Asks the server at ADDR for its health (the built-in arbor.health) and
prints the overall status and each service's, one a line:

  SERVING
  db NOT_SERVING

Exits 0 when the server (or, with --service, that service) is SERVING, and
1 otherwise: NOT_SERVING (a drain has begun, or a service is down), or no
answer at all.
`

// healthCmd runs the health command.
func healthCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("health", "[flags] ADDR", healthAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	service := fs.String("service", "", "judge only this `service` (default: the server and every service)")
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(fs, stderr, "want ADDR, got %d argument(s)", fs.NArg())
	}
	serving := false
	code := cf.run(ctx, fs.Arg(0), stderr, func(ctx context.Context, c *arbor.Client) error {
		r, err := health.Check(ctx, c)
		if err != nil {
			return err
		}
		out := string(r.Status)
		if r.Draining {
			out += " (draining)"
		}
		out += "\n"
		names := make([]string, 0, len(r.Services))
		for name := range r.Services {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			out += fmt.Sprintf("%s %s\n", name, r.Services[name])
		}
		if err := write(stdout, []byte(out)); err != nil {
			return err
		}
		if *service == "" {
			serving = r.Serving()
			return nil
		}
		s, ok := r.Services[*service]
		if !ok {
			return arbor.Errorf(arbor.NotFound, "the server reports no service %q", *service)
		}
		serving = s == health.Serving && !r.Draining
		return nil
	})
	if code == exitOK && !serving {
		return exitFail
	}
	return code
}
