package arbor

import (
	"context"
	"errors"
	"strings"
)

// AuthorizationKey is the metadata key that carries credentials.
const AuthorizationKey = "authorization"

// WithBearerToken makes a client send "authorization: Bearer <token>" with
// every call it makes: unary, promises, calls on references, streams,
// request trees.
func WithBearerToken(token string) ClientOption {
	return clientOption(func(c *clientConfig) { c.token = token })
}

// TokenValidator checks a bearer token. It returns the context the handler
// should run with (e.g. carrying the caller's identity) or an error; a
// plain error becomes Unauthenticated.
type TokenValidator func(ctx context.Context, token string) (context.Context, error)

// WithBearerAuth makes a server require "authorization: Bearer <token>"
// on every call it serves (functions, methods of services, streams) and
// check it with validate, before any interceptor runs. The built-in
// catalog function is exempt so that tools can list functions.
func WithBearerAuth(validate TokenValidator) ServerOption {
	return serverOption(func(c *serverConfig) { c.auth = validate })
}

// bearerAuth is the interceptor WithBearerAuth installs.
func bearerAuth(validate TokenValidator) Interceptor {
	return func(next CallFunc) CallFunc {
		return func(ctx context.Context, req *Request) (*Response, error) {
			if req.ID == CatalogFunction && req.Service == "" {
				return next(ctx, req)
			}
			what := req.ID
			if req.Service != "" {
				what = req.Service + "." + req.ID
			}
			token, ok := strings.CutPrefix(req.Metadata.Get(AuthorizationKey), "Bearer ")
			if !ok || token == "" {
				return nil, Errorf(Unauthenticated, "%s: missing bearer token in %q metadata", what, AuthorizationKey)
			}
			nctx, err := validate(ctx, token)
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					return nil, wrapErr(Unauthenticated, nil, err, what+": invalid bearer token")
				}
				return nil, err
			}
			if nctx == nil {
				nctx = ctx
			}
			return next(nctx, req)
		}
	}
}
