package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/memberlist"
)

// Config configures a Node. Zero fields take the defaults listed on each;
// DefaultConfig returns them filled in.
type Config struct {
	// Name is the node's name, unique in the cluster (default: the host
	// name, a dash and 8 random hex digits, so a restarted process never
	// collides with the tombstone of its previous run). At most 128 bytes,
	// no spaces or control characters.
	Name string

	// BindAddr and BindPort are where gossip listens, UDP and TCP on the
	// same port (default 127.0.0.1; set an interface address or 0.0.0.0
	// to gossip with other machines). BindPort 0 lets the kernel choose;
	// Node.GossipAddr reads the chosen address back. DefaultConfig sets
	// 7946, memberlist's customary port.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are the address other members reach
	// this one at (default: the bound address; with BindAddr 0.0.0.0,
	// memberlist picks a private address of this host).
	AdvertiseAddr string
	AdvertisePort int

	// Seeds are gossip addresses (host:port) of existing members. Join
	// tries them until one answers or JoinTimeout passes; with none, the
	// node starts a new cluster.
	Seeds []string
	// JoinTimeout bounds the seed attempts (default 10 s).
	JoinTimeout time.Duration

	// RPCAddrs are the Arbor addresses this node serves on, advertised to
	// the other members (default: the server's listeners, Server.URLs, at
	// Join; so Listen before Join). One on every interface (tcp://[::]:P,
	// tcp://0.0.0.0:P) is advertised at the gossip's advertise address.
	RPCAddrs []string
	// Tags are advertised with the node (see Filter). With RPCAddrs they
	// must fit memberlist's 512-byte metadata limit.
	Tags map[string]string

	// Key, when set, encrypts and authenticates gossip (AES-GCM, 16, 24 or
	// 32 bytes for AES-128/192/256). Every member needs the same key; a
	// node without it cannot join.
	Key []byte

	// Logger receives the node's log, and memberlist's at debug level
	// (default: discarded).
	Logger *slog.Logger

	// EventBuffer is how many events each subscriber may lag behind before
	// the oldest are dropped (default 1024).
	EventBuffer int
	// MaxMembers bounds the members and the tombstones of departed members
	// this node keeps (default 4096 each): gossip about more is ignored
	// with a log line.
	MaxMembers int

	// Detector, when set, marks members Suspect while their phi is above
	// its threshold. It is fed outside this package (by RPC keep-alives);
	// the node only reads it, every SuspectInterval (default 100 ms), and
	// forgets members that leave or fail.
	Detector        *PhiDetector
	SuspectInterval time.Duration

	// ReconnectInterval is how often the node tries to rejoin a failed
	// member (default 1 s), which is what heals a partition: memberlist
	// alone stops talking to members it declared dead. ReconnectTimeout
	// is how long a failed member is tried, and its tombstone kept
	// (default 5 min).
	ReconnectInterval time.Duration
	ReconnectTimeout  time.Duration

	// BroadcastTimeout bounds how long SetTags, SetLoad and Leave wait for
	// their update to be gossiped when their context has no deadline
	// (default 5 s).
	BroadcastTimeout time.Duration

	// Timing holds the gossip timings; zero fields take DefaultTiming's.
	Timing Timing
	// Compress compresses gossip packets (memberlist's LZW). Off by
	// default: on a local network bandwidth is cheap and the CPU and
	// garbage of compressing every packet are not (64 nodes on 2 cores
	// converge about twice as fast without it). Turn it on across slow
	// links.
	Compress bool

	// Memberlist, when set, is called with the memberlist configuration
	// just before the node starts it, to adjust what Config does not
	// cover. Its Transport is already a memberlist.NetTransport bound to
	// BindAddr:BindPort and may be wrapped (fault injection does). The
	// node's delegates and logger are installed after the call, so it
	// cannot replace them.
	Memberlist func(*memberlist.Config)
}

// Timing is the gossip timing: see memberlist.Config for the meaning of
// each field. Zero fields take DefaultTiming's.
type Timing struct {
	ProbeInterval       time.Duration
	ProbeTimeout        time.Duration
	SuspicionMult       int
	GossipInterval      time.Duration
	GossipNodes         int
	RetransmitMult      int
	PushPullInterval    time.Duration
	TCPTimeout          time.Duration
	GossipToTheDeadTime time.Duration
}

// DefaultTiming returns the default gossip timings: those of
// memberlist.DefaultLocalConfig except
//
//   - ProbeInterval 500 ms (not 1 s) and SuspicionMult 4 (not 3): a silent
//     member is declared failed in about 3 s in a small cluster (probe
//     rounds twice as often; with 4, a 3-node cluster needs no
//     confirmation from a third member to time a suspicion out);
//   - GossipNodes 4 (not 3) and RetransmitMult 4 (not 2): each update is
//     sent 4 × log10(N+1) times instead of 2 ×, so a broadcast reaches
//     every member of a 64-node cluster with few misses;
//   - PushPullInterval 10 s (not 15 s).
//
// Besides, a node syncs its full state twice shortly after joining (see
// Join); with these, 32 nodes started at once converge in under a second
// on a loaded 2-core machine, and 64 in 1 to 3 s (BenchmarkConverge).
func DefaultTiming() Timing {
	return Timing{
		ProbeInterval:       500 * time.Millisecond,
		ProbeTimeout:        200 * time.Millisecond,
		SuspicionMult:       4,
		GossipInterval:      100 * time.Millisecond,
		GossipNodes:         4,
		RetransmitMult:      4,
		PushPullInterval:    10 * time.Second,
		TCPTimeout:          time.Second,
		GossipToTheDeadTime: 15 * time.Second,
	}
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	seti := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.ProbeInterval, d.ProbeInterval)
	set(&t.ProbeTimeout, d.ProbeTimeout)
	seti(&t.SuspicionMult, d.SuspicionMult)
	set(&t.GossipInterval, d.GossipInterval)
	seti(&t.GossipNodes, d.GossipNodes)
	seti(&t.RetransmitMult, d.RetransmitMult)
	set(&t.PushPullInterval, d.PushPullInterval)
	set(&t.TCPTimeout, d.TCPTimeout)
	set(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	return t
}

// DefaultConfig returns a configuration with every default filled in,
// except RPCAddrs, and a generated Name.
func DefaultConfig() Config {
	c := Config{BindPort: 7946}
	c = c.withDefaults()
	return c
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = defaultName()
	}
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1"
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 1024
	}
	if c.MaxMembers <= 0 {
		c.MaxMembers = 4096
	}
	if c.SuspectInterval <= 0 {
		c.SuspectInterval = 100 * time.Millisecond
	}
	if c.ReconnectInterval <= 0 {
		c.ReconnectInterval = time.Second
	}
	if c.ReconnectTimeout <= 0 {
		c.ReconnectTimeout = 5 * time.Minute
	}
	if c.BroadcastTimeout <= 0 {
		c.BroadcastTimeout = 5 * time.Second
	}
	c.Timing = c.Timing.withDefaults()
	c.RPCAddrs = cloneStrings(c.RPCAddrs)
	c.Seeds = cloneStrings(c.Seeds)
	c.Tags = maps.Clone(c.Tags)
	return c
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// defaultName is the host name with a random suffix.
func defaultName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return '-'
		}
		return r
	}, host)
	if len(host) > 100 {
		host = host[:100]
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail on Linux
	return host + "-" + hex.EncodeToString(b[:])
}

// ErrConfig is wrapped by every configuration error of Join.
var ErrConfig = errors.New("cluster: bad config")

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if len(c.Name) > 128 {
		return bad("Name is %d bytes, limit 128", len(c.Name))
	}
	for i, r := range c.Name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return bad("Name %q has a space or control character at byte %d", c.Name, i)
		}
	}
	if len(c.RPCAddrs) == 0 {
		return bad("RPCAddrs is empty: a member must advertise at least one Arbor address")
	}
	for i, a := range c.RPCAddrs {
		if a == "" || strings.IndexFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return bad("RPCAddrs[%d] %q is empty or has a space or control character", i, a)
		}
	}
	if net.ParseIP(c.BindAddr) == nil {
		return bad("BindAddr %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return bad("AdvertiseAddr %q is not an IP address", c.AdvertiseAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return bad("BindPort %d out of range", c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return bad("AdvertisePort %d out of range", c.AdvertisePort)
	}
	for i, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return bad("Seeds[%d] %q: %v", i, s, err)
		}
	}
	if err := checkTags(c.Tags); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if c.Key != nil {
		if err := memberlist.ValidateKey(c.Key); err != nil {
			return bad("Key: %v", err)
		}
	}
	return nil
}
