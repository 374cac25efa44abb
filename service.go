package arbor

import (
	"context"
	"sync"

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
// (E-order) and, by default, run one at a time.
type Service struct {
	name    string
	mu      sync.Mutex
	methods map[string]*handler
	// forward, when set, serves every method by calling the same method
	// on another reference: how a reference received from one peer is
	// passed on to another.
	forward *Ref
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.methods[name]
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

// proxyService returns a service that forwards every call to r: a
// reference from one peer, re-exported to another (Cap'n Proto: "you can
// even re-export a capability imported from another server").
func proxyService(r *Ref) *Service {
	return &Service{name: "proxy", methods: map[string]*handler{}, forward: r}
}

// serveForward runs a call on a proxy by making it on the reference it
// forwards to, with the same arguments (the capabilities in them have
// been decoded on the way in and are encoded again on the way out).
func (s *Service) serveForward(ctx context.Context, in *conn.Incoming, method string, args []byte, out []byte) ([]byte, error) {
	if in != nil && len(in.Caps) > 0 {
		return nil, Errorf(Unimplemented, "%s: passing capabilities through a forwarded reference is not supported yet", method)
	}
	resp, err := s.forward.Call(ctx, &Request{ID: method, Kind: KindUnary, Metadata: IncomingMetadata(ctx), Args: args})
	if err != nil {
		return nil, err
	}
	if len(resp.caps) > 0 {
		return nil, Errorf(Unimplemented, "%s: a forwarded reference returned capabilities, which cannot be passed on yet", method)
	}
	return append(out, resp.Result...), nil
}
