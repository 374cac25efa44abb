package metrics

import (
	"context"
	"net"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arbor-rpc/arbor/conn"
)

// connMetrics is the connection-level metrics, by side ("server": the
// connection was accepted; "client": this side dialed).
type connMetrics struct {
	open        *prometheus.GaugeVec   // side
	opened      *prometheus.CounterVec // side
	streams     *prometheus.GaugeVec   // side
	streamsAll  *prometheus.CounterVec // side
	stalls      *prometheus.CounterVec // side
	stallTime   *prometheus.CounterVec // side
	goaways     *prometheus.CounterVec // side, direction
	bySide      [2]sideConn
	mu          sync.Mutex
	live        map[*conn.Conn]time.Time // open connections and since when
	maxTracked  int
	untrackable int // open connections past maxTracked
}

// sideConn is one side's series, resolved once.
type sideConn struct {
	open, streams                         prometheus.Gauge
	opened, streamsAll, stalls, stallTime prometheus.Counter
	goawaySent, goawayRecv                prometheus.Counter
}

func newConnMetrics(m *Metrics) *connMetrics {
	cl := m.opts.ConstLabels
	c := &connMetrics{live: make(map[*conn.Conn]time.Time), maxTracked: 10000}
	c.open = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.name("connections_open"), ConstLabels: cl,
		Help: "Open connections, by side (server: accepted, client: dialed)."}, []string{"side"})
	c.opened = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("connections_opened_total"), ConstLabels: cl,
		Help: "Connections established (handshake done), by side."}, []string{"side"})
	c.streams = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.name("streams_open"), ConstLabels: cl,
		Help: "Streams running, by side (server: served, client: opened)."}, []string{"side"})
	c.streamsAll = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("streams_total"), ConstLabels: cl,
		Help: "Streams started, by side."}, []string{"side"})
	c.stalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("flow_control_stalls_total"), ConstLabels: cl,
		Help: "Stream sends that waited for flow-control credit, by the side of the connection."}, []string{"side"})
	c.stallTime = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("flow_control_stall_seconds_total"), ConstLabels: cl,
		Help: "Time stream sends spent waiting for flow-control credit, by the side of the connection."}, []string{"side"})
	c.goaways = prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.name("goaways_total"), ConstLabels: cl,
		Help: "GOAWAY frames, by the side of the connection and direction (sent, received)."}, []string{"side", "direction"})
	for i, name := range []string{"server", "client"} {
		c.bySide[i] = sideConn{
			open: c.open.WithLabelValues(name), opened: c.opened.WithLabelValues(name),
			streams: c.streams.WithLabelValues(name), streamsAll: c.streamsAll.WithLabelValues(name),
			stalls: c.stalls.WithLabelValues(name), stallTime: c.stallTime.WithLabelValues(name),
			goawaySent: c.goaways.WithLabelValues(name, "sent"), goawayRecv: c.goaways.WithLabelValues(name, "received"),
		}
	}
	return c
}

func (c *connMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.open, c.opened, c.streams, c.streamsAll, c.stalls, c.stallTime, c.goaways}
}

func (c *connMetrics) of(cc *conn.Conn) *sideConn {
	if cc.IsClient() {
		return &c.bySide[1]
	}
	return &c.bySide[0]
}

// Observer returns the conn.Observer that feeds the per-call and
// connection metrics; pass it to arbor.WithObserver on servers and
// clients. It costs no allocation per call.
func (m *Metrics) Observer() conn.Observer { return observer{m} }

type observer struct{ m *Metrics }

func (o observer) ConnOpened(cc *conn.Conn) {
	c := o.m.conns
	s := c.of(cc)
	s.open.Inc()
	s.opened.Inc()
	c.mu.Lock()
	if len(c.live) < c.maxTracked {
		c.live[cc] = time.Now()
	} else {
		c.untrackable++
	}
	c.mu.Unlock()
}

func (o observer) ConnClosed(cc *conn.Conn, err error) {
	c := o.m.conns
	c.of(cc).open.Dec()
	c.mu.Lock()
	if _, ok := c.live[cc]; ok {
		delete(c.live, cc)
	} else if c.untrackable > 0 {
		c.untrackable--
	}
	c.mu.Unlock()
}

func (o observer) CallStarted(ctx context.Context, info *conn.CallInfo) context.Context {
	s := o.m.server
	if info.Outgoing {
		s = o.m.client
	}
	f := s.get(info.Function, info.Method)
	f.start(shardOf(unsafe.Pointer(info)))
	info.Keep(f)
	if info.Kind == conn.CallStream {
		sc := o.m.conns.of(info.Conn)
		sc.streams.Inc()
		sc.streamsAll.Inc()
	}
	return ctx
}

func (o observer) CallEnded(ctx context.Context, info *conn.CallInfo, err error) {
	s, recv, sent := o.m.server, info.ArgBytes, info.ResultBytes
	if info.Outgoing {
		s, recv, sent = o.m.client, info.ResultBytes, info.ArgBytes
	}
	f, _ := info.Kept().(*fnStats)
	if f == nil || f.s != s { // another observer's, when one wraps a combination of its own
		f = s.get(info.Function, info.Method)
	}
	f.done(shardOf(unsafe.Pointer(info)), err, info.Elapsed(), recv, sent)
	if info.Kind == conn.CallStream {
		o.m.conns.of(info.Conn).streams.Dec()
	}
}

func (o observer) FlowStalled(cc *conn.Conn, d time.Duration) {
	s := o.m.conns.of(cc)
	s.stalls.Inc()
	s.stallTime.Add(d.Seconds())
}

func (o observer) GoAway(cc *conn.Conn, sent bool, code uint32, message string) {
	s := o.m.conns.of(cc)
	if sent {
		s.goawaySent.Inc()
	} else {
		s.goawayRecv.Inc()
	}
}

// ConnInfo describes one open connection, for the console.
type ConnInfo struct {
	Side    string    `json:"side"` // server: accepted; client: dialed
	Remote  string    `json:"remote"`
	Local   string    `json:"local"`
	Since   time.Time `json:"since"`
	Serving int       `json:"serving"` // the peer's calls running on it now
}

// Connections lists the open connections the Observer saw (at most
// 10000 of them, oldest first), and how many more are open untracked.
func (m *Metrics) Connections() ([]ConnInfo, int) {
	c := m.conns
	type entry struct {
		cc    *conn.Conn
		since time.Time
	}
	c.mu.Lock()
	list := make([]entry, 0, len(c.live))
	for cc, since := range c.live {
		list = append(list, entry{cc, since})
	}
	more := c.untrackable
	c.mu.Unlock()
	out := make([]ConnInfo, 0, len(list))
	for _, e := range list { // outside c.mu: Serving takes the connection's lock
		side := "server"
		if e.cc.IsClient() {
			side = "client"
		}
		out = append(out, ConnInfo{Side: side, Remote: addr(e.cc.RemoteAddr()), Local: addr(e.cc.LocalAddr()),
			Since: e.since, Serving: e.cc.Serving()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Since.Before(out[j].Since) })
	return out, more
}

func addr(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
