package admin

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/health"
	"github.com/arbor-rpc/arbor/health/healthgrpc"
	"github.com/arbor-rpc/arbor/metrics"
	"github.com/arbor-rpc/arbor/resolve"
)

//go:embed console/index.html
var consoleFS embed.FS

// Options say what the endpoint shows. Every field may be nil: the parts
// that need it are left out (a 404, or an empty section of the console).
type Options struct {
	// Gatherer is served at /metrics (a *prometheus.Registry).
	Gatherer prometheus.Gatherer
	// Metrics feeds the console: connections, the catalog's counts and
	// latencies, cluster members (Metrics.WatchCluster).
	Metrics *metrics.Metrics
	// Server is the Arbor server shown: its catalog and drain state.
	Server *arbor.Server
	// Engine is the request-tree engine: its trees (live) and caches.
	Engine *resolve.Engine
	// Health answers /healthz and, in gRPC's health protocol, the
	// grpc.health.v1.Health service.
	Health *health.Checker
	// Logs are the log lines the console shows (NewLogBuffer).
	Logs *LogBuffer
	// Token, when set, is required as "Authorization: Bearer TOKEN" on
	// every request (or ?token=TOKEN, which the console page passes on
	// to its own requests: EventSource cannot set headers).
	Token string
	// Title names the process in the console (default "arbor").
	Title string
	// Interval is how often the console's figures are pushed (default 1s;
	// tree changes and log lines are pushed as they happen).
	Interval time.Duration
	// MaxStreams bounds the console event streams open at once (default
	// 32); beyond it /api/events answers 503.
	MaxStreams int
	// Logger receives the endpoint's own errors (default: nowhere).
	Logger *slog.Logger
}

// handler is the endpoint.
type handler struct {
	opts    Options
	mux     *http.ServeMux
	started time.Time
	streams atomic.Int64
	page    []byte // the console
	csp     string // its Content-Security-Policy
}

// NewHandler returns the admin endpoint's handler.
func NewHandler(opts Options) http.Handler {
	if opts.Title == "" {
		opts.Title = "arbor"
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 32
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{opts: opts, mux: http.NewServeMux(), started: time.Now()}
	h.page, _ = consoleFS.ReadFile("console/index.html")
	// Only the page's own script runs: what it renders cannot add one (it
	// renders data as text, and the policy forbids inline handlers and
	// other sources anyway).
	h.csp = "default-src 'self'; script-src 'sha256-" + scriptHash(h.page) + "'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
	m := h.mux
	m.HandleFunc("GET /{$}", h.console)
	m.HandleFunc("GET /healthz", h.healthz)
	m.HandleFunc("GET /api/snapshot", h.snapshotJSON)
	m.HandleFunc("GET /api/events", h.events)
	m.HandleFunc("GET /api/trees/{id}", h.treeJSON)
	if opts.Gatherer != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slogPrinter{opts.Logger}}))
	}
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if opts.Health != nil {
		path, gh := healthgrpc.NewHandler(opts.Health)
		m.Handle(path, gh)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.opts.Token != "" && !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="arbor admin"`)
		http.Error(w, "unauthorized: this admin endpoint needs its bearer token (Authorization: Bearer TOKEN, or ?token=TOKEN)", http.StatusUnauthorized)
		return
	}
	// The console and its data are not to be framed or sniffed.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

func (h *handler) authorized(r *http.Request) bool {
	got := ""
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		got = strings.TrimPrefix(a, "Bearer ")
	} else {
		got = r.URL.Query().Get("token")
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) == 1
}

func (h *handler) console(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", h.csp)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(h.page)
}

// healthz answers 200 while serving, 503 otherwise, with the report.
func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	rep := health.Report{Status: health.Serving, Services: map[string]health.Status{}}
	switch {
	case h.opts.Health != nil:
		rep = h.opts.Health.Report()
	case h.opts.Server != nil && h.opts.Server.Draining():
		rep.Status, rep.Draining = health.NotServing, true
	}
	code := http.StatusOK
	if rep.Status != health.Serving {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

func (h *handler) snapshotJSON(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.snapshot(true))
}

func (h *handler) treeJSON(w http.ResponseWriter, r *http.Request) {
	if h.opts.Engine == nil {
		http.Error(w, "no request-tree engine", http.StatusNotFound)
		return
	}
	st, err := h.opts.Engine.Status(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// slogPrinter adapts a slog.Logger to promhttp's error log.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error("admin: /metrics", "err", v) }
