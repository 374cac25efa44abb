package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate is the node as memberlist sees it. memberlist calls the event
// methods with its node lock held, so they only update the node's table
// and queue events: they never block and never call back into memberlist.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate         = delegate{}
	_ memberlist.EventDelegate    = delegate{}
	_ memberlist.ConflictDelegate = delegate{}
	_ memberlist.MergeDelegate    = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte            { return d.n.nodeMeta(limit) }
func (d delegate) NotifyMsg([]byte)                     {}
func (d delegate) GetBroadcasts(int, int) [][]byte      { return nil }
func (d delegate) LocalState(bool) []byte               { return nil }
func (d delegate) MergeRemoteState([]byte, bool)        {}
func (d delegate) NotifyJoin(mn *memberlist.Node)       { d.n.onJoin(mn) }
func (d delegate) NotifyUpdate(mn *memberlist.Node)     { d.n.onUpdate(mn) }
func (d delegate) NotifyLeave(mn *memberlist.Node)      { d.n.onLeave(mn) }
func (d delegate) NotifyConflict(a, b *memberlist.Node) { d.n.onConflict(a, b) }
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	return d.n.onMerge(peers)
}

// onJoin: memberlist found a new member, or one it had as dead or left.
func (n *Node) onJoin(mn *memberlist.Node) {
	md, err := decodeMeta(mn.Meta)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if err != nil {
		n.log.Warn("ignoring member with malformed metadata", "member", mn.Name, "addr", mn.Address(), "err", err)
		return
	}
	n.admitLocked(mn, md, now)
}

// admitLocked makes mn a current member and emits Joined or Recovered.
func (n *Node) admitLocked(mn *memberlist.Node, md meta, now time.Time) {
	kind := EventJoined
	e := n.members[mn.Name]
	switch {
	case e == nil:
		if n.live >= n.cfg.MaxMembers {
			n.log.Warn("ignoring member: member limit reached", "member", mn.Name, "limit", n.cfg.MaxMembers)
			return
		}
	case e.m.State.InCluster():
		// memberlist only joins members it had as absent, dead or left;
		// treat a repeat as an update.
		n.refreshLocked(e, mn, md, now)
		return
	default:
		if e.m.State == StateFailed {
			kind = EventRecovered
		}
		n.tombs--
	}
	st := StateAlive
	if md.leaving {
		st = StateLeaving
	}
	e = &entry{m: memberOf(mn, md, st, now), meta: md, raw: bytes.Clone(mn.Meta)}
	n.members[mn.Name] = e
	n.live++
	n.emitLocked(kind, e.m)
}

// onUpdate: a member re-advertised itself, usually with new metadata.
func (n *Node) onUpdate(mn *memberlist.Node) {
	md, err := decodeMeta(mn.Meta)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if err != nil {
		n.log.Warn("ignoring malformed metadata update", "member", mn.Name, "addr", mn.Address(), "err", err)
		return
	}
	e := n.members[mn.Name]
	if e == nil || !e.m.State.InCluster() {
		// Its earlier metadata was refused; now it is usable.
		n.admitLocked(mn, md, now)
		return
	}
	n.refreshLocked(e, mn, md, now)
}

func (n *Node) refreshLocked(e *entry, mn *memberlist.Node, md meta, now time.Time) {
	addr := mn.Address()
	if bytes.Equal(e.raw, mn.Meta) && addr == e.m.GossipAddr {
		return
	}
	st, since := e.m.State, e.m.Since
	kind := EventUpdated
	switch {
	case md.leaving && st != StateLeaving:
		st, since, kind = StateLeaving, now, EventLeaving
	case !md.leaving && st == StateLeaving:
		// A Leave that gave up before announcing the departure.
		st, since = StateAlive, now
	}
	e.m = memberOf(mn, md, st, since)
	e.meta = md
	e.raw = bytes.Clone(mn.Meta)
	n.emitLocked(kind, e.m)
}

// onLeave: memberlist declared a member dead or left. memberlist v0.7.0
// does not tell which (the Node it passes always says StateAlive), so the
// member's own leaving flag, gossiped before its departure, decides.
func (n *Node) onLeave(mn *memberlist.Node) {
	md, err := decodeMeta(mn.Meta)
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	e := n.members[mn.Name]
	if e == nil || !e.m.State.InCluster() {
		return
	}
	st, kind := StateFailed, EventFailed
	if e.meta.leaving || (err == nil && md.leaving) {
		st, kind = StateLeft, EventLeft
	}
	e.m.State, e.m.Since = st, now
	n.live--
	n.tombs++
	if n.cfg.Detector != nil {
		n.cfg.Detector.Forget(mn.Name)
	}
	n.emitLocked(kind, e.m)
	n.pruneLocked(now)
}

// onConflict: memberlist saw a second node claim an existing name.
func (n *Node) onConflict(existing, other *memberlist.Node) {
	n.log.Warn("node name conflict: two nodes claim the same name", "member", existing.Name,
		"known_addr", existing.Address(), "other_addr", other.Address())
}

// onMerge vets the member list of a node that is joining (or that this
// node joins): a name that is taken by another address makes the join
// fail with ErrNameConflict instead of two nodes fighting over one name.
func (n *Node) onMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		addr := p.Address()
		var theirs, ours string
		if p.Name == n.cfg.Name {
			if addr == n.gossipAddr {
				continue
			}
			theirs, ours = addr, n.gossipAddr
		} else {
			n.mu.Lock()
			e := n.members[p.Name]
			if e != nil && e.m.State.InCluster() && e.m.GossipAddr != addr {
				theirs, ours = e.m.GossipAddr, addr
			}
			n.mu.Unlock()
			if theirs == "" {
				continue
			}
		}
		err := fmt.Errorf("%w: %q is already a member at %s; refusing the node at %s", ErrNameConflict, p.Name, theirs, ours)
		n.joinConflict.Store(&err)
		n.log.Warn("refusing merge", "err", err)
		return err
	}
	return nil
}

func memberOf(mn *memberlist.Node, md meta, st State, since time.Time) Member {
	return Member{
		Name:       mn.Name,
		GossipAddr: mn.Address(),
		RPCAddrs:   md.rpcAddrs,
		Tags:       md.tags,
		Load:       md.load,
		State:      st,
		Since:      since,
	}
}

func (n *Node) emitLocked(kind EventKind, m Member) {
	if n.log.Enabled(context.Background(), slog.LevelDebug) {
		n.log.Debug("member event", "event", kind.String(), "member", m.Name, "state", m.State.String())
	}
	ev := Event{Kind: kind, Member: m}
	for s := range n.subs {
		s.push(ev)
	}
}

// pruneLocked drops tombstones older than ReconnectTimeout, and the
// oldest ones beyond MaxMembers.
func (n *Node) pruneLocked(now time.Time) {
	if n.tombs == 0 {
		return
	}
	for name, e := range n.members {
		if !e.m.State.InCluster() && now.Sub(e.m.Since) > n.cfg.ReconnectTimeout {
			delete(n.members, name)
			n.tombs--
		}
	}
	for n.tombs > n.cfg.MaxMembers {
		oldest := ""
		var at time.Time
		for name, e := range n.members {
			if !e.m.State.InCluster() && (oldest == "" || e.m.Since.Before(at)) {
				oldest, at = name, e.m.Since
			}
		}
		delete(n.members, oldest)
		n.tombs--
	}
}

// reconnectLoop periodically joins a random failed member. memberlist
// stops probing members it declared dead, so after a partition heals each
// side would keep the other for dead; one successful push/pull with any
// member of the other side makes both refute and merge (what Serf's
// reconnect does).
func (n *Node) reconnectLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			var failed []string
			n.mu.Lock()
			n.pruneLocked(now)
			for _, e := range n.members {
				if e.m.State == StateFailed {
					failed = append(failed, e.m.GossipAddr)
				}
			}
			n.mu.Unlock()
			if len(failed) == 0 {
				continue
			}
			addr := failed[rand.IntN(len(failed))]
			if _, err := n.ml.Join([]string{addr}); err != nil {
				n.log.Debug("reconnect to failed member", "addr", addr, "err", strings.TrimSpace(firstError(err).Error()))
			}
		}
	}
}

// resync runs after a successful join: the join's state sync only
// carried the members the seed knew at that instant, so nodes that joined
// at the same moment are missing and must come by gossip, which misses a
// few pairs in a mass start (each broadcast is sent a bounded number of
// times); the periodic full sync that would repair them runs only every
// Timing.PushPullInterval, scaled up beyond 32 members. So the node syncs
// again with the seed once the other joins of the moment have reached it,
// and later with a random member. The delays are spread over a second so
// that a mass start does not hit the seed all at once again.
func (n *Node) resync(seed string) {
	defer n.wg.Done()
	began := time.Now()
	for i, d := range [...]time.Duration{time.Second, 3 * time.Second} {
		d += rand.N(time.Second)
		t := time.NewTimer(time.Until(began.Add(d)))
		select {
		case <-n.stop:
			t.Stop()
			return
		case <-t.C:
		}
		addr := seed
		if i > 0 {
			if addr = n.randomAlive(); addr == "" {
				continue
			}
		}
		if _, err := n.ml.Join([]string{addr}); err != nil {
			n.log.Debug("state sync after join", "addr", addr, "err", strings.TrimSpace(firstError(err).Error()))
		}
	}
}

// randomAlive returns the gossip address of a random alive member other
// than this node, or "".
func (n *Node) randomAlive() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var addrs []string
	for name, e := range n.members {
		if name != n.cfg.Name && e.m.State == StateAlive {
			addrs = append(addrs, e.m.GossipAddr)
		}
	}
	if len(addrs) == 0 {
		return ""
	}
	return addrs[rand.IntN(len(addrs))]
}

// suspectLoop moves members between alive and suspect as the detector's
// phi crosses its threshold.
func (n *Node) suspectLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.SuspectInterval)
	defer t.Stop()
	det := n.cfg.Detector
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			n.mu.Lock()
			for name, e := range n.members {
				if name == n.cfg.Name {
					continue
				}
				switch e.m.State {
				case StateAlive:
					if det.Suspect(name, now) {
						e.m.State, e.m.Since = StateSuspect, now
						n.emitLocked(EventSuspect, e.m)
					}
				case StateSuspect:
					if !det.Suspect(name, now) {
						e.m.State, e.m.Since = StateAlive, now
						n.emitLocked(EventRecovered, e.m)
					}
				}
			}
			n.mu.Unlock()
		}
	}
}
