// Package health is Arbor's health checking: per-service status on a
// server, served as the built-in function arbor.health (what `arbor
// health ADDR` calls), and by package healthgrpc in the gRPC health
// protocol over HTTP (Kubernetes probes). Every status reads NOT_SERVING
// as soon as the server begins to drain (Shutdown), so load balancers stop
// sending before the listeners close.
//
// It is not a liveness watchdog: it reports what the program sets (and the
// drain), it does not probe dependencies itself.
package health

import (
	"context"
	"errors"
	"sort"
	"sync"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/internal/builtin"
	"github.com/arbor-rpc/arbor/value"
)

// FunctionID is the built-in function Enable registers:
// arbor.health() health.Report.
const FunctionID = "arbor.health"

// Status is the health of a service, as in gRPC's health protocol.
type Status string

// The statuses.
const (
	Serving    Status = "SERVING"
	NotServing Status = "NOT_SERVING"
	Unknown    Status = "UNKNOWN"
)

// Report is the health of a server: overall (Status, the "" service) and
// per service.
type Report struct {
	Status   Status            `msgpack:"status" json:"status"`
	Draining bool              `msgpack:"draining" json:"draining"`
	Services map[string]Status `msgpack:"services" json:"services"`
}

// Serving reports whether the server and every service are serving.
func (r Report) Serving() bool {
	if r.Status != Serving {
		return false
	}
	for _, s := range r.Services {
		if s != Serving {
			return false
		}
	}
	return true
}

// Checker holds a server's health: the overall status (the "" service,
// SERVING from the start) and the status of named services. Safe for
// concurrent use.
type Checker struct {
	srv      *arbor.Server
	mu       sync.Mutex
	services map[string]Status
	watchers map[int]func()
	next     int
}

// ErrUnknownService is returned by Status for a service never set.
var ErrUnknownService = errors.New("health: unknown service")

// Enable makes srv's checker and registers arbor.health on it.
func Enable(srv *arbor.Server) (*Checker, error) {
	c := New(srv)
	err := builtin.Register(srv, FunctionID, nil, "health.Report", func(ctx context.Context, args []byte) ([]byte, error) {
		r := value.NewReader(args)
		if n, err := r.ReadArrayHeader(); err != nil || n != 0 || len(r.Rest()) != 0 {
			return nil, arbor.Errorf(arbor.InvalidArgument, "%s takes no arguments", FunctionID)
		}
		return value.For[Report]().Append(nil, c.Report())
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// New makes a checker for srv without registering arbor.health (for a
// server that exposes health only over HTTP). srv may be nil: then only
// SetStatus decides.
func New(srv *arbor.Server) *Checker {
	return &Checker{srv: srv, services: map[string]Status{"": Serving}, watchers: map[int]func(){}}
}

// SetStatus sets the status of service ("" is the server as a whole).
func (c *Checker) SetStatus(service string, s Status) {
	c.mu.Lock()
	c.services[service] = s
	ws := make([]func(), 0, len(c.watchers))
	for _, w := range c.watchers {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w()
	}
}

// draining reports whether the server has begun to shut down.
func (c *Checker) draining() bool { return c.srv != nil && c.srv.Draining() }

// Status returns the status of service: NOT_SERVING for every service
// once the server drains, ErrUnknownService for one never set.
func (c *Checker) Status(service string) (Status, error) {
	c.mu.Lock()
	s, ok := c.services[service]
	c.mu.Unlock()
	if !ok {
		return Unknown, ErrUnknownService
	}
	if c.draining() {
		return NotServing, nil
	}
	return s, nil
}

// Report returns the overall status and every named service's.
func (c *Checker) Report() Report {
	drain := c.draining()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Report{Status: c.services[""], Draining: drain, Services: make(map[string]Status, len(c.services))}
	for name, s := range c.services {
		if drain {
			s = NotServing
		}
		if name == "" {
			r.Status = s
			continue
		}
		r.Services[name] = s
	}
	return r
}

// Services lists the named services, sorted.
func (c *Checker) Services() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.services))
	for name := range c.services {
		if name != "" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Watch calls onChange whenever a status is set, and once when the
// server begins to drain (every status then reads NOT_SERVING), until
// stop.
func (c *Checker) Watch(onChange func()) (stop func()) {
	c.mu.Lock()
	id := c.next
	c.next++
	c.watchers[id] = onChange
	c.mu.Unlock()
	quit := make(chan struct{})
	if c.srv != nil {
		drain := builtin.DrainBegun(c.srv)
		go func() {
			select {
			case <-drain:
				onChange()
			case <-quit:
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			c.mu.Lock()
			delete(c.watchers, id)
			c.mu.Unlock()
		})
	}
}

// Check asks the server behind caller for its health (arbor.health).
func Check(ctx context.Context, caller arbor.Caller) (Report, error) {
	return arbor.Call0[Report](ctx, caller, FunctionID)
}
