package transport

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
)

// MemNetwork is a namespace of in-process mem: listeners. Listening on
// mem:name registers a listener under name in one MemNetwork; dialing
// mem:name with the same MemNetwork (Config.Mem) connects to it. Separate
// MemNetworks never see each other's names, so tests running in parallel
// do not collide.
//
// Connections are buffered, full-duplex net.Conns: a write returns as soon
// as its bytes fit in the peer's receive buffer (memBufSize per direction)
// and blocks only while that buffer is full. They support deadlines and
// CloseWrite.
//
// Create one with NewMemNetwork; it is safe for concurrent use.
type MemNetwork struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	dials     uint64 // numbers the dialing ends' addresses
}

// NewMemNetwork returns an empty MemNetwork.
func NewMemNetwork() *MemNetwork {
	return &MemNetwork{listeners: make(map[string]*memListener)}
}

var (
	errNameInUse  = errors.New("name already in use")
	errNoListener = errors.New("no listener")
)

// memAddr is the net.Addr of a mem: endpoint: the listener's name, or for
// a dialing end the name followed by "#n".
type memAddr string

func (a memAddr) Network() string { return SchemeMem }
func (a memAddr) String() string  { return string(a) }

func listenMem(ctx context.Context, a Addr, cfg *Config) (Listener, error) {
	if cfg.Mem == nil {
		return nil, configError(nil, "listen %s: Config.Mem is nil (mem: addresses need a MemNetwork)", a)
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: SchemeMem, Addr: memAddr(a.Path), Err: err}
	}
	return cfg.Mem.listen(a.Path)
}

func dialMem(ctx context.Context, a Addr, cfg *Config) (net.Conn, error) {
	if cfg.Mem == nil {
		return nil, configError(nil, "dial %s: Config.Mem is nil (mem: addresses need a MemNetwork)", a)
	}
	return cfg.Mem.dial(ctx, a.Path)
}

func (n *MemNetwork) listen(name string) (*memListener, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, taken := n.listeners[name]; taken {
		return nil, &net.OpError{Op: "listen", Net: SchemeMem, Addr: memAddr(name), Err: errNameInUse}
	}
	l := &memListener{
		network: n,
		name:    name,
		conns:   make(chan *memConn),
		done:    make(chan struct{}),
	}
	n.listeners[name] = l
	return l, nil
}

// dial waits until the listener registered under name accepts the new
// connection, ctx ends, or the listener closes.
func (n *MemNetwork) dial(ctx context.Context, name string) (net.Conn, error) {
	n.mu.Lock()
	l := n.listeners[name]
	n.dials++
	id := n.dials
	n.mu.Unlock()
	fail := func(err error) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: SchemeMem, Addr: memAddr(name), Err: err}
	}
	if l == nil {
		return fail(errNoListener)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	client, server := newMemConnPair(memAddr(name+"#"+strconv.FormatUint(id, 10)), memAddr(name))
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return fail(errNoListener)
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// memListener is the Listener of a mem: address.
type memListener struct {
	network *MemNetwork
	name    string
	conns   chan *memConn // unbuffered: a dial completes when accepted
	done    chan struct{} // closed by Close
	once    sync.Once
}

// Accept waits for a Dial to the listener's name, or for Close.
func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: SchemeMem, Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close unregisters the name, fails pending Dials and unblocks Accept.
func (l *memListener) Close() error {
	closed := false
	l.once.Do(func() {
		closed = true
		l.network.mu.Lock()
		if l.network.listeners[l.name] == l {
			delete(l.network.listeners, l.name)
		}
		l.network.mu.Unlock()
		close(l.done)
	})
	if !closed {
		return &net.OpError{Op: "close", Net: SchemeMem, Addr: l.Addr(), Err: net.ErrClosed}
	}
	return nil
}

// Addr returns the listener's name as a net.Addr whose Network is "mem".
func (l *memListener) Addr() net.Addr { return memAddr(l.name) }

// URL returns "mem:" followed by the name.
func (l *memListener) URL() string { return Addr{Scheme: SchemeMem, Path: l.name}.String() }
