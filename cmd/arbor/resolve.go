package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/tree"
)

// stdin is where "-" reads a request from (a variable for tests).
var stdin io.Reader = os.Stdin

// maxRequestFile bounds the request a command reads.
const maxRequestFile = 64 << 20

const resolveAbout = `Sends the request tree in FILE (Cradle JSON; - reads standard input) to
the server at ADDR, which resolves it, and prints the result as JSON. Bytes
print in Cradle's blob form: {"as_file":false,"size":N,"blob":"<base64>"}.

  {"uuid": "rq_post_iss_object+full", "title": "post_iss_object",
   "args": {"tuple_element0": "123", "tuple_element1": "string",
            "tuple_element2": {"uuid": "uuid_100_2", "title": "make_blob_coro",
                               "args": {"tuple_element0": {"value0": "payload"}}}}}

A request's uuid names the function and, by its suffix (+none, +mem, +full,
+mem_vb, +full_vb), how its result is cached. A failed resolution prints
"error: CODE: message" to stderr, naming the failing request's path, and
exits 1.
`

// clientFlags are the flags of the commands that call a server.
type clientFlags struct {
	timeout time.Duration
	tls     tlsFlags
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.timeout, "timeout", defaultTimeout, "give up after `duration`, dial included (0: never)")
	f.tls.register(fs, true)
}

// run dials addr and calls fn with the client, printing any error as
// "error: CODE: message"; it returns the exit status.
func (f *clientFlags) run(ctx context.Context, addr string, stderr io.Writer, fn func(ctx context.Context, c *arbor.Client) error) int {
	ctx, cancel := withTimeout(ctx, f.timeout)
	defer cancel()
	c, err := arbor.Dial(ctx, addr, arbor.WithTransport(f.tls.config()))
	if err != nil {
		return printError(stderr, timedOut(ctx, err, f.timeout))
	}
	defer c.Close()
	if err := fn(ctx, c); err != nil {
		var we writeError
		if errors.As(err, &we) {
			fmt.Fprintf(stderr, "error: %v\n", we.err)
			return exitFail
		}
		return printError(stderr, timedOut(ctx, err, f.timeout))
	}
	return exitOK
}

// writeError is a failure to write the output, printed as is.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func write(w io.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return writeError{err}
	}
	return nil
}

// readRequest reads a request file, or standard input for "-", and checks
// that it parses, so that a malformed file fails before anything is sent.
func readRequest(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, arbor.Errorf(arbor.InvalidArgument, "%v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxRequestFile+1))
	if err != nil {
		return nil, arbor.Errorf(arbor.InvalidArgument, "reading %s: %v", name, err)
	}
	if len(b) > maxRequestFile {
		return nil, arbor.Errorf(arbor.InvalidArgument, "%s is larger than %d bytes", name, maxRequestFile)
	}
	if _, err := request.ParseJSON(b, request.Limits{}); err != nil {
		return nil, err
	}
	return b, nil
}

// resolveCmd runs the resolve command.
func resolveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("resolve", "[flags] ADDR FILE|-", resolveAbout, stderr)
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
		res, err := tree.ResolveJSON(ctx, c, body)
		if err != nil {
			return err
		}
		// A generated function's result prints as protojson (protojson.go).
		if n, perr := request.ParseJSON(body, request.Limits{}); perr == nil {
			if js, ok, err := protoViewOf(ctx, c, n.ID).viewMsgpack(res); ok {
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

// cacheFlags are serve's request-tree cache flags.
type cacheFlags struct {
	dir, memSize, diskSize, redis string
	explicitDir                   bool
	memBytes, diskBytes           int64
}

func (f *cacheFlags) register(fs *flag.FlagSet) {
	def, err := cache.DefaultDir()
	if err != nil {
		def = ""
	}
	fs.StringVar(&f.dir, "cache-dir", def, "`directory` of the disk cache for +full results; empty for none")
	fs.StringVar(&f.memSize, "mem-cache-size", "1GiB", "bound of the memory cache: a `size` in bytes, or with a KiB, MiB or GiB suffix")
	fs.StringVar(&f.diskSize, "disk-cache-size", "10GiB", "bound of the disk cache: a `size` as for --mem-cache-size")
	fs.StringVar(&f.redis, "redis", "", "Redis `URL` (redis://host:port/db) for +full results, shared by a cluster, instead of the disk")
}

// check validates the flags after parsing.
func (f *cacheFlags) check(fs *flag.FlagSet) error {
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "cache-dir" {
			f.explicitDir = true
		}
	})
	var err error
	if f.memBytes, err = parseSize(f.memSize); err != nil {
		return fmt.Errorf("--mem-cache-size: %v", err)
	}
	if f.diskBytes, err = parseSize(f.diskSize); err != nil {
		return fmt.Errorf("--disk-cache-size: %v", err)
	}
	return nil
}

// enable opens the secondary cache the flags name and enables request-tree
// resolution on srv. The disk cache in the default directory is optional:
// if it cannot be opened (another server holds it), serve goes on without
// it and says so; a --cache-dir that cannot be opened is an error.
func (f *cacheFlags) enable(srv *arbor.Server, log *slog.Logger, obs resolve.Observer) (*resolve.Engine, error) {
	// The disk first, then Redis behind it: a Redis outage still leaves
	// this server the results it has on disk.
	attrs := []any{"memory", f.memSize}
	var disk, redis cache.Cache
	if f.dir != "" {
		d, err := cache.OpenDiskWith(f.dir, cache.DiskOptions{MaxBytes: f.diskBytes, Logger: log})
		switch {
		case err == nil:
			disk = d
			attrs = append(attrs, "disk", d.Path(), "disk_size", f.diskSize)
		case f.explicitDir:
			return nil, err
		default:
			log.Warn("no disk cache", "err", err)
		}
	}
	if f.redis != "" {
		r, err := cache.NewRedis(f.redis, cache.RedisOptions{Logger: log})
		if err != nil {
			if disk != nil {
				disk.Close()
			}
			return nil, err
		}
		redis = r
		attrs = append(attrs, "redis", f.redis)
	}
	var secondary cache.Cache
	switch {
	case disk != nil && redis != nil:
		secondary = cache.NewLayered(disk, redis)
	case disk != nil:
		secondary = disk
	case redis != nil:
		secondary = redis
	default:
		attrs = append(attrs, "disk", "none") // +full results are kept in memory only
	}
	log.Info("request cache", attrs...)
	e, err := tree.Enable(srv, tree.Config{
		MemoryCacheBytes: f.memBytes,
		SecondaryCache:   secondary,
		Logger:           log,
		Observer:         obs,
	})
	if err != nil {
		if secondary != nil {
			secondary.Close()
		}
		return nil, err
	}
	return e, nil
}

// parseSize reads a byte count: digits, optionally followed by B, KiB,
// MiB, GiB, TiB (or K, M, G, T, KB, MB, GB, TB, all powers of 1024).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 1073741824, 512MiB, 1GiB)", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %v", s, err)
	}
	var shift uint
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	case "t", "tb", "tib":
		shift = 40
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (want B, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %q must be positive", s)
	}
	return n << shift, nil
}
