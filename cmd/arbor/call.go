package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cluster"
)

// defaultTimeout bounds a call or catalog request, dial included.
const defaultTimeout = 30 * time.Second

const callAbout = `Calls FUNCTION on the server at ADDR and prints its result as JSON.

Each ARG is one JSON value, numbered from 0: 2, -1.5, true, null, "text",
[1,2], {"k":1}. Quote strings for the shell too: '"text"'. A bytes
parameter takes a JSON string (its UTF-8 bytes); a bytes result prints as a
base64 string, as encoding/json writes []byte.

A streaming function is driven too: a server stream (count) prints each
message as a JSON line; a client stream (sum) or bidirectional stream
(chat) sends every JSON value read from stdin and prints what comes back.

With --cluster SEED, the call goes through a cluster client instead: ADDR
is left out, the client learns the members from SEED, picks one (--tag
filters by tags, --strategy chooses how) and fails over as the cluster
client does.

A function generated from a .proto (/package.Service/Method) takes its
message as a JSON object and prints its result as protojson.

A failed call prints "error: CODE: message" to stderr and exits 1.
`

// call runs the call command.
func call(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("call", "[flags] ADDR FUNCTION [ARG ...]", callAbout, stderr)
	timeout := fs.Duration("timeout", defaultTimeout, "give up after `duration`, dial included (0: never)")
	var tf tlsFlags
	tf.register(fs, true)
	seed := fs.String("cluster", "", "call through a cluster client that learns the members from `seed` (an RPC address); ADDR is then left out")
	var tags stringList
	fs.Var(&tags, "tag", "with --cluster: only members with the tag `key=value`, repeatable")
	strategy := fs.String("strategy", "", "with --cluster: how to choose a member: p2c (default), roundrobin, random, leastconn, key")
	hashKey := fs.String("hash-key", "", "with --cluster: choose the member by rendezvous hashing of `key`")
	if code, ok := parseDialer(fs, args, stderr, &tf); !ok {
		return code
	}
	first := 1 // FUNCTION's position
	if *seed != "" {
		first = 0
	} else if len(tags) > 0 || *strategy != "" || *hashKey != "" {
		return usageError(fs, stderr, "--tag, --strategy and --hash-key need --cluster")
	}
	if fs.NArg() < first+1 {
		return usageError(fs, stderr, "want ADDR and FUNCTION, got %d argument(s)", fs.NArg())
	}
	addr, fn := fs.Arg(0), fs.Arg(first)
	values := make([]any, 0, fs.NArg()-first-1)
	for i, a := range fs.Args()[first+1:] {
		v, err := parseArg(a)
		if err != nil {
			return usageError(fs, stderr, "argument %d is not a JSON value: %v (a string needs JSON quotes: '\"text\"')", i, err)
		}
		values = append(values, v)
	}

	ctx, cancel := withTimeout(ctx, *timeout)
	defer cancel()
	var c arbor.Caller
	if *seed != "" {
		bal, err := balancerNamed(*strategy)
		if err != nil {
			return usageError(fs, stderr, "%v", err)
		}
		// --hash-key picks members by rendezvous on the key: it is the
		// key strategy, which has nothing to hash without it.
		_, byKey := bal.(cluster.Rendezvous)
		switch {
		case *hashKey != "" && *strategy != "" && !byKey:
			return usageError(fs, stderr, "--hash-key picks members by the key; it cannot go with --strategy %s", *strategy)
		case byKey && *hashKey == "":
			return usageError(fs, stderr, "--strategy %s needs --hash-key KEY (the key to hash)", *strategy)
		}
		f, err := cluster.ParseFilter(strings.Join(tags, ","))
		if err != nil {
			return usageError(fs, stderr, "--tag: %v", err)
		}
		cf := clientFlags{timeout: *timeout, tls: tf}
		cc, err := dialCluster(ctx, []string{*seed}, &cf)
		if err != nil {
			return printError(stderr, timedOut(ctx, err, *timeout))
		}
		defer cc.Close()
		ctx = cluster.WithBalancer(cluster.WithFilter(ctx, f), bal)
		if *hashKey != "" {
			ctx = cluster.WithKey(ctx, *hashKey)
		}
		c = cc
	} else {
		cl, err := arbor.Dial(ctx, addr, arbor.WithTransport(tf.config()))
		if err != nil {
			return printError(stderr, timedOut(ctx, err, *timeout))
		}
		defer cl.Close()
		c = cl
	}
	kind, err := kindOf(ctx, c, fn)
	if err != nil {
		return printError(stderr, timedOut(ctx, err, *timeout))
	}
	view := protoViewOf(ctx, c, fn) // protojson.go: generated functions print as protojson
	if kind != arbor.KindUnary {
		if err := callStream(ctx, c, kind, fn, values, stdout, view); err != nil {
			return printError(stderr, timedOut(ctx, err, *timeout))
		}
		return exitOK
	}
	res, err := arbor.CallAny(ctx, c, fn, values...)
	if err == nil {
		res, err = view.view(res)
	}
	if err != nil {
		return printError(stderr, timedOut(ctx, err, *timeout))
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		return printError(stderr, arbor.Errorf(arbor.Internal, "printing the result as JSON: %v", err))
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	return exitOK
}

// parseArg decodes one command-line argument as a single JSON value, with
// numbers as json.Number so that integers keep their precision.
func parseArg(s string) (any, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one value")
	}
	return v, nil
}

// withTimeout is context.WithTimeout, or WithCancel for d <= 0.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// timedOut replaces the bare context error of a command that ran out of
// --timeout with one that says so.
func timedOut(ctx context.Context, err error, d time.Duration) error {
	var ae *arbor.Error
	if d <= 0 || !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.As(err, &ae) || ae.Code != arbor.DeadlineExceeded {
		return err
	}
	if ae.Message == context.DeadlineExceeded.Error() {
		return arbor.Errorf(arbor.DeadlineExceeded, "no answer within --timeout %v", d)
	}
	return arbor.Errorf(arbor.DeadlineExceeded, "%s (--timeout %v)", ae.Message, d)
}

// flagHints turns the transport's hints, which name its Config fields,
// into the flags that set them here.
var flagHints = strings.NewReplacer(
	"trust the server's CA with Config.CAFile, or give Config.TLS its RootCAs", "trust the server's CA with --ca FILE",
	"the name verified is Config.ServerName when set", "the name verified is --server-name when set",
)

// printError prints err as "error: CODE: message" and returns the failure
// status.
func printError(stderr io.Writer, err error) int {
	code, msg := arbor.CodeOf(err), err.Error()
	var ae *arbor.Error
	if errors.As(err, &ae) {
		msg = ae.Message
	}
	msg = flagHints.Replace(msg)
	if msg == "" {
		fmt.Fprintf(stderr, "error: %s\n", code)
	} else {
		fmt.Fprintf(stderr, "error: %s: %s\n", code, msg)
	}
	return exitFail
}
