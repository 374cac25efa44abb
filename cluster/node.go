package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Node is this process's membership in a cluster: a memberlist instance
// gossiping beside an Arbor server, with the node's RPC addresses, tags
// and load as its metadata, a live member table and an event stream.
type Node struct {
	cfg        Config
	log        *slog.Logger
	ml         *memberlist.Memberlist
	gossipAddr string

	updateMu sync.Mutex // serializes SetTags, SetLoad and Leave
	metaMu   sync.Mutex // guards local and localEnc (read by memberlist)
	local    meta
	localEnc []byte

	mu      sync.Mutex // guards the member table and the subscribers
	members map[string]*entry
	live    int // members in cluster states
	tombs   int // members that left or failed
	subs    map[*subscriber]struct{}
	closed  bool

	joinConflict atomic.Pointer[error] // set by the merge delegate
	done         atomic.Bool           // Leave or Close has begun
	stop         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
	shutdownOnce sync.Once
}

// entry is one member in the table.
type entry struct {
	m    Member
	meta meta   // last valid metadata
	raw  []byte // its encoding, to tell real updates from re-broadcasts
}

// ErrClosed is returned by a Node's methods after Leave or Close.
var ErrClosed = errors.New("cluster: node closed")

// ErrNameConflict is returned by Join when another member already has the
// node's name.
var ErrNameConflict = errors.New("cluster: node name already in use")

// JoinError is returned by Join when no seed could be joined in time.
type JoinError struct {
	Seeds    []string
	Attempts int
	Elapsed  time.Duration
	// Errs holds the last error of each seed, in the order of Seeds.
	Errs []error
}

// Error names every seed with its last error.
func (e *JoinError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster: could not join any of %d seed(s) in %v (%d attempts)", len(e.Seeds), e.Elapsed.Round(time.Millisecond), e.Attempts)
	for i, s := range e.Seeds {
		msg := "no answer"
		if i < len(e.Errs) && e.Errs[i] != nil {
			msg = strings.TrimPrefix(e.Errs[i].Error(), "failed to join "+s+": ")
		}
		fmt.Fprintf(&b, "; seed %s: %s", s, msg)
	}
	return b.String()
}

// Unwrap returns the seeds' errors.
func (e *JoinError) Unwrap() []error { return e.Errs }

// start is Join without the server: it starts memberlist and joins the
// seeds.
func start(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Name),
		local:   meta{rpcAddrs: cfg.RPCAddrs, tags: cfg.Tags},
		members: make(map[string]*entry),
		subs:    make(map[*subscriber]struct{}),
		stop:    make(chan struct{}),
	}
	if _, err := encodeMeta(n.local); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	mc, err := n.memberlistConfig()
	if err != nil {
		return nil, err
	}
	// Listeners on every interface are advertised at the gossip's own
	// address, known now.
	if host, _, err := net.SplitHostPort(n.gossipAddr); err == nil {
		n.cfg.RPCAddrs = reachableAddrs(n.cfg.RPCAddrs, net.ParseIP(host))
		n.local.rpcAddrs = n.cfg.RPCAddrs
	}
	enc, err := encodeMeta(n.local)
	if err != nil {
		_ = mc.Transport.Shutdown()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	n.localEnc = enc
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = mc.Transport.Shutdown()
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", n.gossipAddr, err)
	}
	n.ml = ml
	if len(cfg.Seeds) > 0 {
		if err := n.joinSeeds(ctx, cfg.Seeds, cfg.JoinTimeout); err != nil {
			n.shutdown()
			return nil, err
		}
	}
	n.wg.Add(1)
	go n.reconnectLoop()
	if cfg.Detector != nil {
		n.wg.Add(1)
		go n.suspectLoop()
	}
	return n, nil
}

// memberlistConfig builds memberlist's configuration: DefaultLocalConfig,
// the node's timings and addresses, a transport bound here (so the chosen
// port is known before memberlist starts), then the user's hook, then the
// node's delegates.
func (n *Node) memberlistConfig() (*memberlist.Config, error) {
	c := n.cfg
	mc := memberlist.DefaultLocalConfig()
	t := c.Timing
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.RetransmitMult = t.RetransmitMult
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.EnableCompression = c.Compress
	mc.Name = c.Name
	mc.BindAddr = c.BindAddr
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.SecretKey = c.Key
	logger := log.New(mlLogWriter{n.log}, "", 0)

	nt, err := newNetTransport(c.BindAddr, c.BindPort, logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip listen on %s: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	mc.BindPort = nt.GetAutoBindPort()
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = mc.BindPort
	}
	mc.Transport = nt
	if c.Memberlist != nil {
		c.Memberlist(mc)
	}
	d := delegate{n}
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	mc.Merge = d
	mc.LogOutput = nil
	mc.Logger = logger

	ip, port, err := mc.Transport.FinalAdvertiseAddr(mc.AdvertiseAddr, mc.AdvertisePort)
	if err != nil {
		_ = mc.Transport.Shutdown()
		return nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
	}
	n.gossipAddr = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	return mc, nil
}

// newNetTransport binds memberlist's UDP and TCP listeners. With port 0
// the kernel's TCP port may be taken for UDP; retry as memberlist does.
func newNetTransport(addr string, port int, logger *log.Logger) (*memberlist.NetTransport, error) {
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{addr},
			BindPort:  port,
			Logger:    logger,
		})
		if err == nil {
			return nt, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

// joinSeeds contacts every seed, again and again with a growing pause,
// until one answers, timeout passes or ctx ends.
func (n *Node) joinSeeds(ctx context.Context, seeds []string, timeout time.Duration) error {
	began := time.Now()
	deadline := began.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	errs := make([]error, len(seeds))
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		n.joinConflict.Store(nil)
		var answered []string
		for i, s := range seeds {
			_, err := n.ml.Join([]string{s})
			if c := n.joinConflict.Load(); c != nil {
				return *c
			}
			if err == nil {
				answered = append(answered, s)
				errs[i] = nil
				continue
			}
			errs[i] = firstError(err)
		}
		if len(answered) > 0 {
			n.log.Debug("joined cluster", "seeds", answered, "attempts", attempt, "members", n.ml.NumMembers())
			n.wg.Add(1)
			go n.resync(answered[rand.IntN(len(answered))])
			return nil
		}
		wait := min(pause, time.Until(deadline))
		if wait <= 0 || ctx.Err() != nil {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("cluster: join %v: %w", seeds, err)
			}
			return &JoinError{Seeds: slices.Clone(seeds), Attempts: attempt, Elapsed: time.Since(began), Errs: errs}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cluster: join %v: %w", seeds, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, time.Second)
	}
}

// firstError unpacks memberlist's multierror (one error per Join call
// here) so that messages stay on one line.
func firstError(err error) error {
	if m, ok := err.(interface{ WrappedErrors() []error }); ok {
		if es := m.WrappedErrors(); len(es) > 0 {
			return es[0]
		}
	}
	return err
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// GossipAddr returns the host:port other members gossip with this node
// at (with BindPort 0, the port the kernel chose).
func (n *Node) GossipAddr() string { return n.gossipAddr }

// Local returns this node as a member.
func (n *Node) Local() Member {
	m, _ := n.Member(n.cfg.Name)
	return m
}

// Members returns the current members (alive, suspect or leaving, this
// node included) whose tags match f, sorted by name.
func (n *Node) Members(f Filter) []Member {
	n.mu.Lock()
	ms := make([]Member, 0, n.live)
	for _, e := range n.members {
		if e.m.State.InCluster() && f.Match(e.m.Tags) {
			ms = append(ms, e.m)
		}
	}
	n.mu.Unlock()
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Member returns the member called name, including one that left or
// failed recently (its tombstone is kept for Config.ReconnectTimeout).
func (n *Node) Member(name string) (Member, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.members[name]
	if !ok {
		return Member{}, false
	}
	return e.m, true
}

// Subscribe returns a channel of membership events, in the order this
// node saw them, from now on, and a function that ends the subscription
// and closes the channel. The channel is also closed when the node
// closes. A subscriber that falls Config.EventBuffer events behind loses
// the oldest; the next event it reads says how many in Event.Missed.
//
// To combine events with the current state, subscribe first and then
// read Members: an event may then repeat what the snapshot shows, but
// none is lost.
func (n *Node) Subscribe() (<-chan Event, func()) {
	s := newSubscriber(n.cfg.EventBuffer)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		s.close()
		return s.out, func() {}
	}
	n.subs[s] = struct{}{}
	n.mu.Unlock()
	return s.out, func() {
		n.mu.Lock()
		delete(n.subs, s)
		n.mu.Unlock()
		s.close()
	}
}

// SetTags replaces the node's tags and gossips the change; it returns once
// the update has been sent to other members, or with an error when ctx
// (or Config.BroadcastTimeout, without a deadline) ends first, though
// gossip then still carries the update. Tags that do not fit the metadata
// limit are refused with ErrMetaTooLarge.
func (n *Node) SetTags(ctx context.Context, tags map[string]string) error {
	if err := checkTags(tags); err != nil {
		return err
	}
	return n.update(ctx, func(m *meta) { m.tags = maps.Clone(tags) })
}

// SetLoad sets the load figure the node advertises (any finite number;
// its meaning is the application's, for example in-flight calls or CPU
// use) and gossips it like SetTags. Every call is a broadcast to the
// whole cluster: call it when the load changed meaningfully, not per
// request.
func (n *Node) SetLoad(ctx context.Context, load float64) error {
	if math.IsNaN(load) || math.IsInf(load, 0) {
		return fmt.Errorf("cluster: load %v is not a finite number", load)
	}
	return n.update(ctx, func(m *meta) { m.load = load })
}

func (n *Node) update(ctx context.Context, change func(*meta)) error {
	n.updateMu.Lock()
	defer n.updateMu.Unlock()
	if n.done.Load() {
		return ErrClosed
	}
	n.metaMu.Lock()
	next := n.local
	change(&next)
	enc, err := encodeMeta(next)
	if err == nil {
		n.local, n.localEnc = next, enc
	}
	n.metaMu.Unlock()
	if err != nil {
		return err
	}
	if err := n.ml.UpdateNode(n.broadcastTimeout(ctx)); err != nil {
		return fmt.Errorf("cluster: gossip metadata update: %w", err)
	}
	return nil
}

func (n *Node) broadcastTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return n.cfg.BroadcastTimeout
}

// Leave leaves the cluster gracefully and shuts the node down: it first
// marks itself leaving (members see EventLeaving and should send it no
// new calls), then announces its departure (EventLeft, not EventFailed)
// and stops gossiping. Waiting for each announcement to be sent is bounded
// by ctx (or Config.BroadcastTimeout); the node is shut down even if that
// fails, and the error says which step timed out.
func (n *Node) Leave(ctx context.Context) error {
	n.updateMu.Lock()
	if n.done.Swap(true) {
		n.updateMu.Unlock()
		return ErrClosed
	}
	var errs []error
	n.metaMu.Lock()
	next := n.local
	next.leaving = true
	if enc, err := encodeMeta(next); err == nil { // cannot grow past the limit: one flag bit
		n.local, n.localEnc = next, enc
	}
	n.metaMu.Unlock()
	if err := n.ml.UpdateNode(n.broadcastTimeout(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("cluster: announce leaving: %w", err))
	}
	n.updateMu.Unlock()
	n.stopLoops()
	if err := n.ml.Leave(n.broadcastTimeout(ctx)); err != nil {
		errs = append(errs, fmt.Errorf("cluster: announce leave: %w", err))
	}
	n.shutdown()
	return errors.Join(errs...)
}

// Close stops the node without leaving: the other members will find it
// failed, as if it had crashed. Use Leave for a planned departure.
func (n *Node) Close() error {
	if n.done.Swap(true) {
		return nil
	}
	n.stopLoops()
	n.shutdown()
	return nil
}

func (n *Node) stopLoops() {
	n.stopOnce.Do(func() { close(n.stop) })
	n.wg.Wait()
}

// shutdown stops memberlist and closes the subscribers.
func (n *Node) shutdown() {
	n.shutdownOnce.Do(func() {
		n.stopLoops()
		if err := n.ml.Shutdown(); err != nil {
			n.log.Warn("gossip shutdown", "err", err)
		}
		n.mu.Lock()
		n.closed = true
		subs := n.subs
		n.subs = nil
		n.mu.Unlock()
		for s := range subs {
			s.close()
		}
	})
}

// nodeMeta is what memberlist advertises for this node.
func (n *Node) nodeMeta(limit int) []byte {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	if len(n.localEnc) > limit {
		// memberlist panics on oversized metadata; encodeMeta already
		// refused it at metaMaxSize, so this only guards a smaller limit.
		n.log.Error("node metadata over memberlist's limit, advertising none", "size", len(n.localEnc), "limit", limit)
		return nil
	}
	return n.localEnc
}
