package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cache"
	"github.com/arbor-rpc/arbor/health"
	"github.com/arbor-rpc/arbor/metrics"
	"github.com/arbor-rpc/arbor/resolve"
)

// Snapshot is what the console shows at one moment (the payload of
// /api/snapshot and of the events stream's "stats" events).
type Snapshot struct {
	Title       string                  `json:"title"`
	Now         time.Time               `json:"now"`
	Uptime      float64                 `json:"uptime"` // seconds
	Health      *health.Report          `json:"health,omitempty"`
	Draining    bool                    `json:"draining"`
	URLs        []string                `json:"urls"`
	Goroutines  int                     `json:"goroutines"`
	MemoryInUse int64                   `json:"memory_in_use"` // the server's call memory budget in use
	Connections []metrics.ConnInfo      `json:"connections"`
	MoreConns   int                     `json:"more_connections"`
	Catalog     []CatalogEntry          `json:"catalog"`
	Outgoing    []metrics.FunctionStats `json:"outgoing"` // calls this process makes
	Engine      *EngineInfo             `json:"engine,omitempty"`
	Caches      []CacheTier             `json:"caches"`
	Members     []metrics.MemberInfo    `json:"members"`
	// With the full snapshot only (the first event, /api/snapshot):
	Trees []TreeView `json:"trees,omitempty"`
	Logs  []LogLine  `json:"logs,omitempty"`
}

// CatalogEntry is one function of the server with its figures.
type CatalogEntry struct {
	arbor.FunctionInfo
	Calls    int64            `json:"calls"`
	Errors   int64            `json:"errors"`
	ByCode   map[string]int64 `json:"by_code,omitempty"`
	InFlight int64            `json:"in_flight"`
	TreeRuns int64            `json:"tree_runs"` // runs in request trees (in process: not in Calls)
	Mean     float64          `json:"mean"`      // seconds
	P50      float64          `json:"p50"`
	P99      float64          `json:"p99"`
}

// EngineInfo is the request-tree engine's counters.
type EngineInfo struct {
	Resolves     int64 `json:"resolves"`
	Failures     int64 `json:"failures"`
	Runs         int64 `json:"runs"`
	Retries      int64 `json:"retries"`
	Deduplicated int64 `json:"deduplicated"`
	CacheErrors  int64 `json:"cache_errors"`
	Trees        int64 `json:"trees"`
}

// CacheTier is one tier of the request-tree cache.
type CacheTier struct {
	Tier      string  `json:"tier"`
	Entries   int64   `json:"entries"`
	Bytes     int64   `json:"bytes"`
	MaxBytes  int64   `json:"max_bytes"`
	Hits      int64   `json:"hits"`
	Misses    int64   `json:"misses"`
	HitRatio  float64 `json:"hit_ratio"` // -1 before any lookup
	Evictions int64   `json:"evictions"`
	Failures  int64   `json:"failures"`
	Down      bool    `json:"down"`
}

// TreeView is one asynchronous tree with its status tree.
type TreeView struct {
	resolve.TreeInfo
	Status *resolve.Status `json:"status,omitempty"`
}

// maxTreesShown bounds the trees whose status trees a snapshot carries.
const maxTreesShown = 20

func (h *handler) snapshot(full bool) Snapshot {
	o := h.opts
	s := Snapshot{Title: o.Title, Now: time.Now(), Uptime: time.Since(h.started).Seconds(), Goroutines: runtime.NumGoroutine()}
	if o.Health != nil {
		r := o.Health.Report()
		s.Health = &r
		s.Draining = r.Draining
	}
	if o.Server != nil {
		s.Draining = s.Draining || o.Server.Draining()
		s.URLs = o.Server.URLs()
		s.MemoryInUse = o.Server.MemoryInUse()
	}
	var served map[string]metrics.FunctionStats
	if o.Metrics != nil {
		s.Connections, s.MoreConns = o.Metrics.Connections()
		served = map[string]metrics.FunctionStats{}
		for _, f := range o.Metrics.Functions("server") {
			served[f.Function] = f
		}
		s.Outgoing = o.Metrics.Functions("client")
		s.Members = o.Metrics.Members()
	}
	if o.Server != nil {
		for _, fi := range o.Server.Catalog() {
			e := CatalogEntry{FunctionInfo: fi}
			if f, ok := served[fi.ID]; ok {
				e.Calls, e.Errors, e.ByCode, e.InFlight, e.Mean, e.P50, e.P99 = f.Calls, f.Errors, f.ByCode, f.InFlight, f.Mean, f.P50, f.P99
				delete(served, fi.ID)
			}
			if o.Engine != nil {
				e.TreeRuns = o.Engine.Calls(fi.ID)
			}
			s.Catalog = append(s.Catalog, e)
		}
	}
	// What was served outside the catalog: built-in functions, methods
	// of capabilities, ids no catalog has (metrics.OtherFunction).
	var rest []string
	for id := range served {
		rest = append(rest, id)
	}
	sort.Strings(rest)
	for _, id := range rest {
		f := served[id]
		kind := arbor.KindUnary
		if id == metrics.OtherFunction {
			kind = "other"
		}
		s.Catalog = append(s.Catalog, CatalogEntry{FunctionInfo: arbor.FunctionInfo{ID: id, Kind: kind},
			Calls: f.Calls, Errors: f.Errors, ByCode: f.ByCode, InFlight: f.InFlight, Mean: f.Mean, P50: f.P50, P99: f.P99})
	}
	if e := o.Engine; e != nil {
		st := e.Stats()
		s.Engine = &EngineInfo{Resolves: st.Resolves, Failures: st.Failures, Runs: st.Runs, Retries: st.Retries,
			Deduplicated: st.Deduplicated, CacheErrors: st.CacheErrors, Trees: st.Trees}
		s.Caches = append(s.Caches, tierOf(resolve.TierMemory, st.Memory))
		if _, sec := e.Caches(); sec != nil && st.Secondary != nil {
			s.Caches = append(s.Caches, tierOf(resolve.SecondaryTier(sec), *st.Secondary))
		}
		if full {
			s.Trees = h.trees()
		}
	}
	if full && o.Logs != nil {
		s.Logs = o.Logs.Since(0)
	}
	return s
}

func tierOf(name string, st cache.Stats) CacheTier {
	t := CacheTier{Tier: name, Entries: st.Entries, Bytes: st.Bytes, MaxBytes: st.MaxBytes, Hits: st.Hits, Misses: st.Misses,
		Evictions: st.Evictions, Failures: st.Failures, Down: st.Down, HitRatio: -1}
	if n := st.Hits + st.Misses; n > 0 {
		t.HitRatio = float64(st.Hits) / float64(n)
	}
	return t
}

// trees lists the engine's trees, newest first, the newest with their
// status trees.
func (h *handler) trees() []TreeView {
	infos := h.opts.Engine.Trees()
	out := make([]TreeView, 0, len(infos))
	for i, ti := range infos {
		v := TreeView{TreeInfo: ti}
		if i < maxTreesShown {
			v.Status, _ = h.opts.Engine.Status(ti.ID) // nil if released meanwhile
		}
		out = append(out, v)
	}
	return out
}

// scriptHash is the CSP hash of a page's one inline script.
func scriptHash(page []byte) string {
	s := string(page)
	i := strings.Index(s, "<script>")
	j := strings.LastIndex(s, "</script>")
	if i < 0 || j < i {
		return ""
	}
	sum := sha256.Sum256([]byte(s[i+len("<script>") : j]))
	return base64.StdEncoding.EncodeToString(sum[:])
}
