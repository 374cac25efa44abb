package arbor

import "context"

// BootstrapFunction is the built-in function that returns a server's
// bootstrap service (WithBootstrap): what Client.Bootstrap calls. Call it
// with Go0 and PipelineRef to use the service before it arrives:
//
//	main := arbor.PipelineRef(arbor.Go0[*arbor.Ref](ctx, c, arbor.BootstrapFunction))
const BootstrapFunction = "arbor.bootstrap"

// WithBootstrap names the service a client obtains with Client.Bootstrap
// (Cap'n Proto's bootstrap interface; EZ RPC's getMain()), so that a
// capability-first program needs no function ids at all: every client
// gets svc itself.
func WithBootstrap(svc *Service) ServerOption {
	return WithBootstrapFunc(func(context.Context) (*Service, error) { return svc, nil })
}

// WithBootstrapFunc is WithBootstrap with a service made for each
// Bootstrap call (a session per client, say). fn sees the caller's
// context: its peer and metadata.
func WithBootstrapFunc(fn func(ctx context.Context) (*Service, error)) ServerOption {
	return serverOption(func(c *serverConfig) { c.bootstrap = fn })
}

// registerBootstrap registers the built-in; without a bootstrap service
// it tells callers what the server is missing.
func (s *Server) registerBootstrap() {
	fn := s.cfg.bootstrap
	Handle0(builtinRegistrar{s}, BootstrapFunction, func(ctx context.Context) (*Service, error) {
		if fn == nil {
			return nil, Errorf(NotFound, "this server has no bootstrap service (the server sets one with arbor.WithBootstrap)")
		}
		svc, err := fn(ctx)
		if err == nil && svc == nil {
			err = Errorf(Internal, "the bootstrap function returned no service")
		}
		return svc, err
	})
}

// Bootstrap returns the server's bootstrap service (WithBootstrap), in
// one call.
func (c *Client) Bootstrap(ctx context.Context) (*Ref, error) {
	return Call0[*Ref](ctx, c, BootstrapFunction)
}
