package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/admin"
	"github.com/arbor-rpc/arbor/health"
	"github.com/arbor-rpc/arbor/metrics"
	"github.com/arbor-rpc/arbor/resolve"
)

// opsFlags are serve's operations flags: the admin endpoint.
type opsFlags struct {
	admin, token, tokenFile string
}

func (f *opsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.admin, "admin", "", "serve /metrics, /healthz, /debug/pprof/, gRPC health and the live console on `address`, and turn metrics on (HOST:PORT; :PORT or a bare port binds loopback only; port 0 picks one)")
	fs.StringVar(&f.token, "admin-token", "", "require this bearer `token` on every admin request (prefer --admin-token-file: a flag is visible to other users)")
	fs.StringVar(&f.tokenFile, "admin-token-file", "", "read the admin bearer token from `file`")
}

// check validates the flags after parsing and reads the token file.
func (f *opsFlags) check() error {
	if f.admin != "" {
		if _, err := admin.BindAddr(f.admin); err != nil {
			return fmt.Errorf("--admin: %v", err)
		}
	}
	if f.tokenFile != "" {
		if f.token != "" {
			return fmt.Errorf("--admin-token and --admin-token-file both give a token; choose one")
		}
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %v", err)
		}
		f.token = string(trimSpace(b))
		if f.token == "" {
			return fmt.Errorf("--admin-token-file %s is empty", f.tokenFile)
		}
	}
	if f.token != "" && f.admin == "" {
		return fmt.Errorf("--admin-token needs --admin")
	}
	return nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// ops is what serve observes itself with: metrics on a registry of its
// own, health, the log lines the console shows, the admin endpoint.
type ops struct {
	flags  opsFlags
	reg    *prometheus.Registry
	m      *metrics.Metrics
	logs   *admin.LogBuffer
	health *health.Checker
	adm    *admin.Server
}

func newOps(f opsFlags) (*ops, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		return nil, err
	}
	return &ops{flags: f, reg: reg, m: m, logs: admin.NewLogBuffer(500, slog.LevelInfo)}, nil
}

// logger returns serve's logger: text on stderr at level, and the
// console's buffer.
func (o *ops) logger(stderr io.Writer, level slog.Level) *slog.Logger {
	return slog.New(o.logs.Handler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
}

// serverOptions observe the server's connections and calls, when the
// admin endpoint will show them (metrics nobody can read cost for
// nothing).
func (o *ops) serverOptions() []arbor.ServerOption {
	if o.flags.admin == "" {
		return nil
	}
	return []arbor.ServerOption{arbor.WithObserver(o.m.Observer())}
}

// treeObserver feeds the request-tree metrics, when they are shown.
func (o *ops) treeObserver() resolve.Observer {
	if o.flags.admin == "" {
		return nil
	}
	return o.m.TreeObserver()
}

// start enables health on srv, watches it and the engine, and starts the
// admin endpoint if asked (announce prints where).
func (o *ops) start(srv *arbor.Server, e *resolve.Engine, log *slog.Logger) error {
	hc, err := health.Enable(srv)
	if err != nil {
		return err
	}
	o.health = hc
	o.m.WatchServer(srv)
	o.m.WatchEngine(e)
	if o.flags.admin == "" {
		return nil
	}
	l, err := admin.Listen(o.flags.admin)
	if err != nil {
		return err
	}
	h := admin.NewHandler(admin.Options{Gatherer: o.reg, Metrics: o.m, Server: srv, Engine: e, Health: hc,
		Logs: o.logs, Token: o.flags.token, Title: "arbor serve", Logger: log})
	o.adm = admin.Serve(l, h)
	return nil
}

// announce prints "admin on URL" (after the "listening on" lines).
func (o *ops) announce(stdout io.Writer, log *slog.Logger) {
	if o.adm != nil {
		fmt.Fprintf(stdout, "admin on %s\n", o.adm.URL())
		log.Info("admin endpoint", "url", o.adm.URL(), "token", o.flags.token != "")
	}
}

// stop closes the admin endpoint.
func (o *ops) stop() {
	if o.adm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		o.adm.Close(ctx)
	}
}
