// Package admin is Arbor's operations endpoint: one http.Handler that
// serves /metrics (Prometheus), /healthz, /debug/pprof/, the gRPC health
// protocol (when given a health.Checker), and a live web console at /:
// connections and calls in flight, the catalog with call counts and
// latencies, the request-tree caches per tier with hit ratios, request
// trees whose status trees update as they resolve, cluster members with
// state and phi, and the process's log lines. The console is one embedded
// page without a build step; the server pushes its updates as
// Server-Sent Events (/api/events), it does not poll.
//
// Safety: Listen binds loopback unless the address names a host, a
// bearer token (Options.Token) can guard every path, and the console
// renders everything it shows as text (function ids, error messages and
// log lines from peers are data, never markup).
//
// It is not a metrics store or a log shipper: it shows the present, and
// the recent log lines it keeps in memory.
package admin
