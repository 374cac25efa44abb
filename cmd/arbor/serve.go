package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cluster"
	"github.com/arbor-rpc/arbor/internal/demo"
	"github.com/arbor-rpc/arbor/transport"
)

// defaultListen is where serve listens without --listen.
const defaultListen = "tcp://127.0.0.1:7450"

// shutdownTimeout bounds the graceful shutdown; connections still busy
// after it are closed.
const shutdownTimeout = 10 * time.Second

const serveAbout = `Serves the demo catalog (add, concat, echo, sleep, fail, and the request-tree
functions) on every --listen address until SIGINT or SIGTERM, then shuts
down gracefully: running calls get up to 10s to finish. Prints "listening
on ADDR" to stdout for each listener, with the port actually bound; logs go
to stderr.

With --http (or --https), the generated services (demo.v1.Greeter) are
also served to gRPC, gRPC-Web and Connect clients, with gRPC server
reflection: grpcurl -plaintext ADDR list. With --grpc (or --grpcs) they are
served to gRPC clients alone on a native HTTP/2 server, the faster path
for grpc-go and other gRPC clients; it prints "grpc listening on ADDR".

Request trees (arbor resolve) cache +mem results in memory and +full
results in memory and on disk under --cache-dir; with --redis also in Redis,
behind the disk (a result one server computed is a hit on every server
sharing the Redis, and a Redis outage leaves each server its disk).
`

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ", ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// serve runs the serve command until ctx ends.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", "[flags]", serveAbout, stderr)
	var listen stringList
	fs.Var(&listen, "listen", "`address` to listen on, repeatable (default "+defaultListen+")")
	var tf tlsFlags
	tf.register(fs, false)
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	var cf cacheFlags
	cf.register(fs)
	var gf gossipFlags
	gf.register(fs)
	maxConns := fs.Int("max-connections", arbor.DefaultMaxConnections, "refuse connections beyond `n` open ones (never more than the descriptor limit allows)")
	maxMemory := fs.String("max-memory", "256MiB", "memory all connections' calls may hold at once (requests until handled, results until written); beyond it the server stops reading: a `size` as for --mem-cache-size")
	var hf httpFlags
	fs.StringVar(&hf.plain, "http", "", "also serve the generated services (demo.v1.Greeter) over gRPC (h2c), gRPC-Web and Connect at this host:port `address`")
	fs.StringVar(&hf.tls, "https", "", "the same over TLS (HTTP/2 and HTTP/1.1) at this `address`; needs --cert and --key")
	fs.StringVar(&hf.grpc, "grpc", "", "also serve the generated services to gRPC clients (application/grpc, h2c) on the native gRPC server at this host:port `address` (no reflection, gRPC-Web, Connect or compression: those are --http's)")
	fs.StringVar(&hf.grpcTLS, "grpcs", "", "the native gRPC server over TLS (ALPN h2) at this `address`; needs --cert and --key")
	maxConnMemory := fs.String("max-conn-memory", "32MiB", "the same for one connection: a `size`")
	var of opsFlags // ops.go: the admin endpoint
	of.register(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := of.check(); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	memBytes, err := parseSize(*maxMemory)
	if err != nil {
		return usageError(fs, stderr, "--max-memory: %v", err)
	}
	connMemBytes, err := parseSize(*maxConnMemory)
	if err != nil {
		return usageError(fs, stderr, "--max-conn-memory: %v", err)
	}
	if *maxConns <= 0 {
		return usageError(fs, stderr, "--max-connections must be positive, got %d", *maxConns)
	}
	if err := cf.check(fs); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	tags, err := gf.check()
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	if _, err := gf.requirements(); err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument %q", fs.Arg(0))
	}
	lvl, err := parseLevel(*level)
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	if len(listen) == 0 {
		listen = stringList{defaultListen}
	}
	for _, addr := range listen {
		a, err := transport.ParseAddr(addr)
		if err != nil {
			return usageError(fs, stderr, "--listen: %v", err)
		}
		if a.Scheme == transport.SchemeMem {
			return usageError(fs, stderr, "--listen %s: mem: addresses exist only inside one process", addr)
		}
		if (a.Scheme == transport.SchemeTLS || a.Scheme == transport.SchemeQUIC) && (tf.cert == "" || tf.key == "") {
			return usageError(fs, stderr, "--listen %s needs --cert and --key", addr)
		}
	}

	o, err := newOps(of)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	log := o.logger(stderr, lvl)
	cfg := tf.config()
	srv := arbor.NewServer(append(o.serverOptions(), arbor.WithLogger(log), arbor.WithTransport(cfg),
		arbor.WithLimits(arbor.Limits{MaxConnections: *maxConns, MaxMemory: memBytes, MaxConnMemory: connMemBytes}))...)
	if err := errors.Join(demo.Register(srv), demo.RegisterWhoami(srv, nodeName(&gf))); err != nil {
		log.Error("registering the demo catalog", "err", err)
		return exitFail
	}

	var ls []transport.Listener
	for _, addr := range listen {
		l, err := transport.Listen(ctx, addr, cfg)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			fmt.Fprintf(stderr, "error: listen %s: %v\n", addr, err)
			return exitFail
		}
		ls = append(ls, l)
	}
	engine, err := cf.enable(srv, log, o.treeObserver()) // resolve.go: request trees and their caches
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	defer engine.Close()
	if err := o.start(srv, engine, log); err != nil {
		for _, l := range ls {
			l.Close()
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	defer o.stop()
	web, err := hf.start(srv, &tf, log, stdout) // http.go: the gRPC/Connect bridge
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}

	var wg sync.WaitGroup
	failed := make(chan error, len(ls))
	var urls []string
	for _, l := range ls {
		urls = append(urls, l.URL())
	}
	for _, l := range ls {
		fmt.Fprintf(stdout, "listening on %s\n", l.URL())
		log.Info("listening", "addr", l.URL())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); !errors.Is(err, arbor.ErrServerClosed) {
				failed <- fmt.Errorf("serve %s: %w", l.URL(), err)
			}
		}()
	}
	o.announce(stdout, log)

	var node *cluster.Node
	if gf.gossip != "" {
		if node, err = gf.start(ctx, srv, urls, tags, log, stdout); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			web.close(context.Background())
			srv.Close()
			wg.Wait()
			return exitFail
		}
	}
	var dist *cluster.Distributor
	if node != nil && gf.distribute {
		require, _ := gf.requirements() // checked with the other flags
		if dist, err = cluster.Distribute(ctx, node, srv, engine, cluster.DistributeConfig{Require: require, Logger: log}); err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			node.Close()
			web.close(context.Background())
			srv.Close()
			wg.Wait()
			return exitFail
		}
		log.Info("distributed resolution of request trees", "node", node.Name())
	}
	status := exitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", shutdownTimeout)
	case err := <-failed:
		log.Error("listener failed; shutting down", "err", err)
		status = exitFail
	case err := <-web.done:
		log.Error("HTTP or gRPC listener failed; shutting down", "err", err)
		status = exitFail
	}
	if node != nil { // leave first: clients stop choosing this node
		lctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := node.Leave(lctx); err != nil {
			log.Warn("leaving the cluster", "err", err)
		}
		cancel()
		if dist != nil {
			dist.Close() // trees still running resolve here from now on
		}
		node.Close()
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	web.close(sctx)
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete; closing the remaining connections", "err", err)
		srv.Close()
	}
	wg.Wait()
	log.Info("stopped")
	return status
}

// parseLevel accepts the four slog level names, in any case.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid --log-level %q (want debug, info, warn or error)", s)
}
