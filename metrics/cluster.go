package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor/cluster"
)

// ClusterSource is what WatchCluster reads: a *cluster.Node.
type ClusterSource interface {
	Name() string
	Members(f cluster.Filter) []cluster.Member
}

// clusterMetrics is the cluster metrics: members by state and phi per
// peer read at scrape time, and the counters a cluster client feeds.
type clusterMetrics struct {
	rec *ClusterRecorder
	col *clusterCollector
}

func newClusterMetrics(m *Metrics) *clusterMetrics {
	return &clusterMetrics{
		rec: &ClusterRecorder{
			retries: newFnCounter(m, "cluster_retries_total", "Calls a cluster client sent again on another node after a failure, by function."),
			hedges:  newFnCounter(m, "cluster_hedges_total", "Hedged calls a cluster client sent (a second node asked while the first was slow), by function."),
			refused: newFnCounter(m, "cluster_retry_budget_refusals_total", "Retries or hedges a cluster client did not send because its retry budget was spent, by function."),
		},
		col: &clusterCollector{
			members: prometheus.NewDesc(m.name("cluster_members"), "Cluster members as this node sees them, by state (alive, suspect, leaving).", []string{"state"}, m.opts.ConstLabels),
			phi:     prometheus.NewDesc(m.name("cluster_phi"), "Phi-accrual suspicion of each peer (0: on time; the detector's threshold marks it suspect).", []string{"peer"}, m.opts.ConstLabels),
		},
	}
}

func (c *clusterMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.rec.retries.vec, c.rec.hedges.vec, c.rec.refused.vec, c.col}
}

// WatchCluster reports n's members by state at every scrape and, when d
// is set, the phi of every other member. One node is watched at a time;
// a later call replaces the earlier, nil stops watching.
func (m *Metrics) WatchCluster(n ClusterSource, d *cluster.PhiDetector) {
	c := m.clust.col
	c.mu.Lock()
	c.node, c.det = n, d
	c.mu.Unlock()
}

// Cluster returns the recorder a cluster client reports its retries,
// hedges and retry-budget refusals to.
func (m *Metrics) Cluster() *ClusterRecorder { return m.clust.rec }

// ClusterRecorder counts what a cluster client decides per call. Its
// methods are safe for concurrent use and cost no allocation for a
// function already seen.
type ClusterRecorder struct {
	retries, hedges, refused *fnCounter
}

// Retried counts a call of function sent again after a failure.
func (r *ClusterRecorder) Retried(function string) { r.retries.inc(function) }

// Hedged counts a hedge: a second attempt of function started while
// the first was still running.
func (r *ClusterRecorder) Hedged(function string) { r.hedges.inc(function) }

// RetryBudgetRefused counts a retry or hedge of function not sent
// because the retry budget was spent.
func (r *ClusterRecorder) RetryBudgetRefused(function string) { r.refused.inc(function) }

// clusterCollector reads a node's membership at scrape time.
type clusterCollector struct {
	members, phi *prometheus.Desc
	mu           sync.Mutex
	node         ClusterSource
	det          *cluster.PhiDetector
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.members
	ch <- c.phi
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	n, d := c.node, c.det
	c.mu.Unlock()
	if n == nil {
		return
	}
	counts := map[cluster.State]int{}
	members := n.Members(cluster.Filter{})
	for _, mb := range members {
		counts[mb.State]++
	}
	for _, st := range []cluster.State{cluster.StateAlive, cluster.StateSuspect, cluster.StateLeaving} {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(counts[st]), st.String())
	}
	if d == nil {
		return
	}
	now := time.Now()
	self := n.Name()
	for _, mb := range members {
		if mb.Name != self {
			ch <- prometheus.MustNewConstMetric(c.phi, prometheus.GaugeValue, d.Phi(mb.Name, now), mb.Name)
		}
	}
}

// MemberInfo is one member as the console shows it.
type MemberInfo struct {
	Name  string    `json:"name"`
	Addrs []string  `json:"addrs"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Phi   float64   `json:"phi"`
	Local bool      `json:"local"`
}

// Members lists the watched cluster's members with their phi, or nil
// when no cluster is watched.
func (m *Metrics) Members() []MemberInfo {
	c := m.clust.col
	c.mu.Lock()
	n, d := c.node, c.det
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	now := time.Now()
	self := n.Name()
	var out []MemberInfo
	for _, mb := range n.Members(cluster.Filter{}) {
		mi := MemberInfo{Name: mb.Name, Addrs: mb.RPCAddrs, State: mb.State.String(), Since: mb.Since, Local: mb.Name == self}
		if d != nil && !mi.Local {
			mi.Phi = d.Phi(mb.Name, now)
		}
		out = append(out, mi)
	}
	return out
}
