// Package metrics is Arbor's Prometheus instrumentation, on a registry
// the caller passes (no global state): per function and side (server:
// calls this side serves; client: calls it makes) calls by code, latency
// histograms, calls in flight and bytes in and out; connections, streams,
// flow-control stalls and GOAWAYs; request trees (cache hits and misses
// per level and tier, evictions and bytes per tier, single-flight joins,
// retries, trees in flight); and a cluster's members by state, phi per
// peer, and the retries, hedges and retry-budget refusals a cluster
// client reports.
//
//	m, err := metrics.New(reg, metrics.Options{})
//	srv := arbor.NewServer(arbor.WithObserver(m.Observer()))
//	m.WatchServer(srv)                  // function labels from its catalog
//	e, _ := tree.Enable(srv, tree.Config{Observer: m.TreeObserver()})
//	m.WatchEngine(e)                    // cache tiers' sizes and evictions
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Per-call metrics come from a conn.Observer (Observer), which costs no
// allocation per call, or from interceptors (ServerInterceptor,
// ClientInterceptor), which also see calls run in process
// (Server.Invoke) and work on any Caller, at the interceptor path's cost.
// Use one of the two for a side, not both: they feed the same series.
//
// Label cardinality is bounded: on a watched server, function ids not in
// its catalog are counted as "_other", and on either side at most
// Options.MaxFunctions distinct ids get their own label; the rest are
// "_other" too.
//
// It is not an exporter or a dashboard: serve the registry with promhttp
// (package admin does, with the live console).
package metrics
