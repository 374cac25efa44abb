package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/cluster"
)

// gossipFlags are serve's cluster flags.
type gossipFlags struct {
	gossip string
	join   stringList
	tags   stringList
	name   string
	// distribute: resolve request trees across the members; require:
	// FUNCTION=TAGS, the tags a member needs to run FUNCTION.
	distribute bool
	require    stringList
}

func (f *gossipFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.gossip, "gossip", "", "gossip on `host:port` (port 0: any) and join a cluster; prints \"gossip on HOST:PORT\"")
	fs.Var(&f.join, "join", "gossip `address` of a member to join through, repeatable")
	fs.Var(&f.tags, "tag", "advertise the tag `key=value`, repeatable")
	fs.StringVar(&f.name, "node", "", "the node's `name` in the cluster (default: host name and a random suffix)")
	fs.BoolVar(&f.distribute, "distribute", false, "resolve request trees across the members: each subtree on a member that has its function, the same subtree always on the same member (needs --gossip)")
	fs.Var(&f.require, "require", "with --distribute, `FUNCTION=K[=V][,K[=V]]` sends requests for FUNCTION only to members with those tags, repeatable")
}

// requirements parses --require into DistributeConfig.Require.
func (f *gossipFlags) requirements() (map[string]string, error) {
	if len(f.require) > 0 && !f.distribute {
		return nil, fmt.Errorf("--require needs --distribute")
	}
	m := map[string]string{}
	for _, r := range f.require {
		id, tags, ok := strings.Cut(r, "=")
		if !ok || id == "" || tags == "" {
			return nil, fmt.Errorf("--require %q: want FUNCTION=K=V[,K=V]", r)
		}
		if _, err := cluster.ParseFilter(tags); err != nil {
			return nil, fmt.Errorf("--require %q: %v", r, err)
		}
		m[id] = tags
	}
	return m, nil
}

// check validates the flags; tags are returned parsed.
func (f *gossipFlags) check() (map[string]string, error) {
	if f.gossip == "" {
		if len(f.join) > 0 || len(f.tags) > 0 || f.name != "" || f.distribute {
			return nil, fmt.Errorf("--join, --tag, --node and --distribute need --gossip")
		}
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(f.gossip); err != nil {
		return nil, fmt.Errorf("--gossip %q: want host:port: %v", f.gossip, err)
	}
	tags := map[string]string{}
	for _, t := range f.tags {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--tag %q: want key=value", t)
		}
		tags[k] = v
	}
	return tags, nil
}

// start joins the cluster, advertising the listeners' addresses.
func (f *gossipFlags) start(ctx context.Context, srv *arbor.Server, urls []string, tags map[string]string, log *slog.Logger, stdout io.Writer) (*cluster.Node, error) {
	host, port, _ := net.SplitHostPort(f.gossip)
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, fmt.Errorf("--gossip %q: bad port", f.gossip)
	}
	cfg := cluster.DefaultConfig()
	cfg.BindAddr, cfg.BindPort = host, p
	cfg.Seeds = f.join
	cfg.Tags = tags
	cfg.Name = f.name
	cfg.RPCAddrs = urls // on every interface: advertised at the gossip address (cluster)
	cfg.Logger = log
	n, err := cluster.Join(ctx, srv, cfg)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "gossip on %s\n", n.GossipAddr())
	log.Info("joined the cluster", "node", n.Name(), "gossip", n.GossipAddr(), "members", len(n.Members(cluster.Filter{})))
	return n, nil
}

// nodeName is what whoami answers: the node's name, or the host's.
func nodeName(f *gossipFlags) string {
	if f.name != "" {
		return f.name
	}
	h, _ := os.Hostname()
	return h
}

const membersAbout = `Lists the members of the cluster that ADDR (any member's RPC address)
belongs to, one a line: name, RPC address, state, tags, and phi, the
failure detector's suspicion as seen from here after a second of
heartbeats (0-1 healthy, above 8 taken out of rotation).
`

// members runs the members command.
func members(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("members", "[flags] ADDR", membersAbout, stderr)
	var cf clientFlags
	cf.register(fs)
	watch := fs.Duration("listen", time.Second, "listen to heartbeats for `duration` before printing phi")
	if code, ok := parseDialer(fs, args, stderr, &cf.tls); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(fs, stderr, "want ADDR, got %d argument(s)", fs.NArg())
	}
	ctx, cancel := withTimeout(ctx, cf.timeout)
	defer cancel()
	c, err := dialCluster(ctx, []string{fs.Arg(0)}, &cf)
	if err != nil {
		return printError(stderr, timedOut(ctx, err, cf.timeout))
	}
	defer c.Close()
	ms := c.Members()
	// Talk to each member for a moment so that phi has heartbeats.
	for _, m := range ms {
		arbor.Call0[[]arbor.FunctionInfo](cluster.WithMember(ctx, m.Name), c, arbor.CatalogFunction)
	}
	select {
	case <-time.After(*watch):
	case <-ctx.Done():
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, m := range ms {
		keys := make([]string, 0, len(m.Tags))
		for k := range m.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var tags []string
		for _, k := range keys {
			tags = append(tags, k+"="+m.Tags[k])
		}
		addr := ""
		if len(m.RPCAddrs) > 0 {
			addr = m.RPCAddrs[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\n", m.Name, addr, m.State, strings.Join(tags, ","), c.Phi(m.Name))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFail
	}
	return exitOK
}

// dialCluster connects a cluster client with the command's TLS flags.
func dialCluster(ctx context.Context, seeds []string, cf *clientFlags) (*cluster.Client, error) {
	cfg := cluster.DefaultClientConfig()
	cfg.Seeds = seeds
	cfg.Options = []arbor.ClientOption{arbor.WithTransport(cf.tls.config())}
	return cluster.DialConfig(ctx, cfg)
}

// balancerNamed maps --strategy to a balancer.
func balancerNamed(s string) (cluster.Balancer, error) {
	switch s {
	case "", "p2c":
		return cluster.NewP2C(nil, nil), nil
	case "roundrobin", "round-robin":
		return &cluster.RoundRobin{}, nil
	case "random":
		return cluster.NewRandom(nil), nil
	case "leastconn", "least-connections":
		return &cluster.LeastConnections{}, nil
	case "key", "rendezvous":
		return cluster.Rendezvous{}, nil
	}
	return nil, fmt.Errorf("unknown --strategy %q (want p2c, roundrobin, random, leastconn or key)", s)
}
