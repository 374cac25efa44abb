package arbor

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/arbor-rpc/arbor/conn"
)

// Service is an object whose methods peers call through a reference (a
// capability). Register methods with the same HandleN functions as server
// functions. Return a service from a handler, pass it as an argument, or
// put it in a struct field, slice or map of either, and the peer receives
// a *Ref to it. A service sent on a connection is exported there until
// the peer releases every reference to it or the connection closes.
//
// Calls made on one reference are delivered in the order they were made
// (E-order): each starts only after the ones sent before it on that
// reference have started. They then run concurrently, so a method may
// call back into the peer, which may call into this service again, without
// waiting for itself. A service whose state needs it runs its calls one at
// a time instead (Serialized).
type Service struct {
	name    string
	mu      sync.RWMutex
	methods map[string]*handler
	// forward, when set, serves every method by calling the same method
	// on another reference: how a reference received from one peer is
	// passed on to another.
	forward *Ref

	serialized atomic.Bool
	serial     sync.Mutex // held while a call of a serialized service runs
	ics        []Interceptor
	inner      CallFunc // the service's interceptors around its handler

	exported  atomic.Int64 // connections exporting it
	onRelease func()
}

// OnRelease sets fn to run when no peer holds a reference to the service
// any more: the last one was released, or the connections it was
// exported on closed (Cap'n Proto: the server object's destructor). A
// service that holds references of its own closes them there. fn runs
// each time that happens (a service may be exported again), on a
// goroutine of the connection: it must not block for long.
func (s *Service) OnRelease(fn func()) *Service {
	s.mu.Lock()
	s.onRelease = fn
	s.mu.Unlock()
	return s
}

// unexported counts one connection less exporting s.
func (s *Service) unexported() {
	if s.exported.Add(-1) != 0 {
		return
	}
	s.mu.RLock()
	fn := s.onRelease
	s.mu.RUnlock()
	if fn != nil {
		fn()
	}
}

// Serialized makes the service run its calls one at a time, in the order
// they were made, and returns it. A call made from inside one of its
// calls into the service itself (directly, or through a callback of the
// peer) then waits for the outer call to end: keep callbacks out of
// serialized services, or bound them with a deadline.
func (s *Service) Serialized() *Service {
	s.serialized.Store(true)
	return s
}

// Use adds interceptors that run for the service's methods only, inside
// the server's own (which see every call), and returns the service: a
// check per method (a bearer token for some of them, say) belongs here.
// Request.Service names the service and Request.ID the method.
func (s *Service) Use(ics ...Interceptor) *Service {
	s.mu.Lock()
	s.ics = append(s.ics, ics...)
	s.inner = chain(s.ics, invokeHandler)
	s.mu.Unlock()
	return s
}

func (s *Service) interceptors() CallFunc {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.inner
}

// NewService returns an empty service; name appears in errors and in
// what interceptors see (Request.Service).
func NewService(name string) *Service {
	return &Service{name: name, methods: make(map[string]*handler)}
}

// Name is the name the service was made with.
func (s *Service) Name() string { return s.name }

func (s *Service) register(h *handler, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.methods[h.info.ID]; dup {
		return Errorf(AlreadyExists, "method %q of %s is already registered", h.info.ID, s.name)
	}
	s.methods[h.info.ID] = h
	return nil
}

func (s *Service) method(name string) *handler {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.methods[name]
}

// methodBytes is method for a name read from the wire, without copying it.
func (s *Service) methodBytes(name []byte) *handler {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.methods[string(name)]
}

// Methods describes the service's methods.
func (s *Service) Methods() []FunctionInfo {
	s.mu.Lock()
	out := make([]FunctionInfo, 0, len(s.methods))
	for _, h := range s.methods {
		out = append(out, h.info)
	}
	s.mu.Unlock()
	sortInfos(out)
	return out
}

// Ref returns a reference to the service itself: calls on it run in
// process (through the service's interceptors, with no connection), and
// passing it in a call exports the service, as passing s would. Code that
// holds capabilities as *Ref values (a struct field that may name a
// remote object or one of this side's own) uses it for its own services.
func (s *Service) Ref() *Ref { return localRef(s) }

// proxyService returns a service that forwards every call to r: a
// reference from one peer, re-exported to another (Cap'n Proto: "you can
// even re-export a capability imported from another server").
func proxyService(r *Ref) *Service {
	return &Service{name: "proxy", methods: map[string]*handler{}, forward: r}
}

// serveForward runs a call on a proxy by making it on the reference it
// forwards to: the arguments as they came, their capabilities decoded
// from this connection's table and encoded again for the other's, and
// the result's likewise on the way back. The call is sent before
// delivered is called, so calls on the proxy reach the origin in the
// order they came (E-order through the proxy); cancellation follows the
// incoming call's context.
func (s *Service) serveForward(ctx context.Context, in *conn.Incoming, method string, args []byte, out []byte, delivered func()) ([]byte, error) {
	defer delivered()
	if in.Stream != nil {
		return nil, Errorf(Unimplemented, "%s: streams on a capability re-exported from another connection are not supported; call the exporter directly", method)
	}
	req := &Request{ID: method, Kind: KindUnary, Async: true, Metadata: IncomingMetadata(ctx), Args: args}
	if in.CapsTaken {
		return nil, capsRerun(method)
	}
	if len(in.Caps) > 0 {
		dec := &capDecoder{cc: in.Conn, table: takeCaps(in)}
		refs, err := dec.all()
		if err != nil {
			dec.releaseAll()
			return nil, wrapErr(InvalidArgument, ErrSerialization, err, method+": arguments")
		}
		defer closeAll(refs) // the call's table holds its own references
		req.caps = refEncoder(refs)
	}
	resp, err := s.forward.Call(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.async == nil {
		return nil, Errorf(Internal, "%s: the forwarded call was answered in place (an interceptor?); proxies need the connection's answer", method)
	}
	delivered()
	res, err := resp.async.Result()
	caps := resp.async.Caps()
	resp.async.Release()
	if err != nil {
		if len(caps) > 0 {
			(&capDecoder{cc: resp.cc, table: caps}).releaseUnused()
		}
		return nil, fromStatus(err)
	}
	if len(caps) > 0 {
		dec := &capDecoder{cc: resp.cc, table: caps, owner: resp.owner}
		refs, err := dec.all()
		if err != nil {
			dec.releaseAll()
			return nil, wrapErr(InvalidArgument, ErrSerialization, err, method+": result")
		}
		defer closeAll(refs)
		if in.ResultCaps, err = refEncoder(refs).resolve(in.Conn); err != nil {
			return nil, err
		}
	}
	return append(out, res...), nil
}

// refEncoder returns an encoder whose table is refs, index for index.
func refEncoder(refs []*Ref) *capEncoder {
	e := &capEncoder{entries: make([]capEntry, len(refs))}
	for i, r := range refs {
		e.entries[i] = capEntry{ref: r}
	}
	return e
}

func closeAll(refs []*Ref) {
	for _, r := range refs {
		r.Close()
	}
}
