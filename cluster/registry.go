package cluster

import (
	"slices"
	"strings"
	"sync"
)

// Registry is a live view of the members, for code that does not run
// gossip itself (a cluster client): it is fed member snapshots (Replace,
// from any node's member list), single updates (Upsert, Remove) or a
// node's events (Apply), and answers tag queries. It keeps only current
// members: a member that left or failed is removed. The zero value is
// ready to use; it is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	members map[string]Member
	version uint64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Replace makes ms the whole membership (members not in cluster states
// are skipped).
func (r *Registry) Replace(ms []Member) {
	next := make(map[string]Member, len(ms))
	for _, m := range ms {
		if m.State.InCluster() && m.Name != "" {
			next[m.Name] = m
		}
	}
	r.mu.Lock()
	r.members = next
	r.version++
	r.mu.Unlock()
}

// Upsert adds or replaces m; a member in the left or failed state is
// removed instead.
func (r *Registry) Upsert(m Member) {
	if !m.State.InCluster() {
		r.Remove(m.Name)
		return
	}
	r.mu.Lock()
	if r.members == nil {
		r.members = make(map[string]Member)
	}
	r.members[m.Name] = m
	r.version++
	r.mu.Unlock()
}

// Remove drops the member called name and reports whether it was there.
func (r *Registry) Remove(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.members[name]; !ok {
		return false
	}
	delete(r.members, name)
	r.version++
	return true
}

// Apply applies one event of Node.Subscribe. It does not resynchronize
// after missed events (Event.Missed > 0): the caller should Replace from
// a fresh snapshot then.
func (r *Registry) Apply(ev Event) { r.Upsert(ev.Member) }

// Member returns the member called name.
func (r *Registry) Member(name string) (Member, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m, ok := r.members[name]
	return m, ok
}

// Members returns the current members whose tags match f, sorted by name.
func (r *Registry) Members(f Filter) []Member {
	return r.AppendMembers(nil, f)
}

// AppendMembers appends the members matching f to dst, sorted by name,
// so a caller can reuse one slice between queries.
func (r *Registry) AppendMembers(dst []Member, f Filter) []Member {
	start := len(dst)
	r.mu.RLock()
	for _, m := range r.members {
		if f.Match(m.Tags) {
			dst = append(dst, m)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(dst[start:], func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

// Len returns the number of members.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.members)
}

// Version increases on every change, so a caller can cache a query's
// result (say, a candidate list per filter) and redo it only when the
// version moved.
func (r *Registry) Version() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.version
}
