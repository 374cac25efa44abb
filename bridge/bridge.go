package bridge

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/arborproto"
)

// DefaultMaxMessageBytes bounds one message a caller sends, as gRPC's
// default receive limit does.
const DefaultMaxMessageBytes = 4 << 20

// Config configures a Handler. The zero value is usable.
type Config struct {
	// Files holds the descriptors of the services (default
	// protoregistry.GlobalFiles, where generated code registers them).
	Files *protoregistry.Files
	// Types holds the message types for JSON (default
	// protoregistry.GlobalTypes; dynamic types are built for the rest).
	Types *protoregistry.Types
	// MaxMessageBytes bounds one incoming message, after decompression
	// (default DefaultMaxMessageBytes).
	MaxMessageBytes int
	// NoReflection leaves out gRPC server reflection.
	NoReflection bool
}

// Handler is an http.Handler serving a server's generated functions.
type Handler struct {
	srv     *arbor.Server
	cfg     Config
	mu      sync.Mutex
	methods map[string]http.Handler // by procedure; built on first use
	reflect map[string]http.Handler // reflection services, by path prefix
	natives sync.Map                // the native gRPC server's methods: path → nativeMethod
}

// New returns a Handler serving srv's generated functions: every function
// of srv's catalog whose id is a gRPC procedure name
// ("/package.Service/Method") that Config.Files describes, including
// those registered after New.
func New(srv *arbor.Server, cfg Config) *Handler {
	if cfg.Files == nil {
		cfg.Files = protoregistry.GlobalFiles
	}
	if cfg.Types == nil {
		cfg.Types = protoregistry.GlobalTypes
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	h := &Handler{srv: srv, cfg: cfg, methods: map[string]http.Handler{}, reflect: map[string]http.Handler{}}
	if !cfg.NoReflection {
		r := grpcreflect.NewReflector(grpcreflect.NamerFunc(h.Services), grpcreflect.WithDescriptorResolver(cfg.Files))
		for _, mk := range []func(*grpcreflect.Reflector, ...connect.HandlerOption) (string, http.Handler){grpcreflect.NewHandlerV1, grpcreflect.NewHandlerV1Alpha} {
			path, rh := mk(r)
			h.reflect[path] = rh
		}
	}
	return h
}

// Services lists the full names of the services h serves, sorted.
func (h *Handler) Services() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range h.srv.Catalog() {
		md, ok := h.method(f)
		if !ok {
			continue
		}
		name := string(md.Parent().FullName())
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	if !h.cfg.NoReflection {
		out = append(out, "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection")
	}
	return sortStrings(out)
}

// method returns the method f was generated from, if h may serve it: its
// id is the method's procedure and the catalog's kind and message names
// match the descriptor.
func (h *Handler) method(f arbor.FunctionInfo) (protoreflect.MethodDescriptor, bool) {
	if !strings.HasPrefix(f.ID, "/") || strings.Contains(f.ID, "+") {
		return nil, false
	}
	md, err := arborproto.MethodOf(h.cfg.Files, f.ID)
	if err != nil || arborproto.Procedure(md) != f.ID || arborproto.KindOf(md) != f.Kind {
		return nil, false
	}
	var want arbor.FunctionInfo
	arborproto.Describe(md)(&want)
	if len(f.Args) != len(want.Args) || (len(f.Args) == 1 && f.Args[0] != want.Args[0]) || f.Result != want.Result {
		return nil, false
	}
	return md, true
}

// ServeHTTP serves one HTTP request: a call of a generated function, a
// reflection request, or 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The peer and its TLS state, which connect-go's request does not
	// carry, travel in the context to the call.
	r = r.WithContext(context.WithValue(r.Context(), peerKey{}, arbor.Peer{Addr: addr(r.RemoteAddr), TLS: r.TLS}))
	if mh := h.lookup(r.URL.Path); mh != nil {
		mh.ServeHTTP(w, r)
		return
	}
	for prefix, rh := range h.reflect {
		if strings.HasPrefix(r.URL.Path, prefix) {
			rh.ServeHTTP(w, r)
			return
		}
	}
	http.NotFound(w, r)
}

// lookup returns the connect handler of the procedure path, building it
// on first use.
func (h *Handler) lookup(path string) http.Handler {
	h.mu.Lock()
	mh := h.methods[path]
	h.mu.Unlock()
	if mh != nil {
		return mh
	}
	f, ok := h.srv.Function(path)
	if !ok {
		return nil
	}
	md, ok := h.method(f)
	if !ok {
		return nil
	}
	mh = h.build(md)
	h.mu.Lock()
	defer h.mu.Unlock()
	if old := h.methods[path]; old != nil {
		return old
	}
	h.methods[path] = mh
	return mh
}

type peerKey struct{}

// addr is a remote address as net/http gives it.
type addr string

func (a addr) Network() string { return "tcp" }
func (a addr) String() string  { return string(a) }

var _ net.Addr = addr("")

// NewHTTPServer returns an http.Server for h speaking HTTP/1.1 and HTTP/2
// (unencrypted HTTP/2 on a plain listener, as gRPC clients use; with
// ServeTLS, HTTP/2 over TLS).
func NewHTTPServer(h http.Handler) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: readHeaderTimeout}
}
