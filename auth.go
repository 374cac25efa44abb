package arbor

import (
	"context"
	"errors"
	"strings"

	"github.com/arbor-rpc/arbor/internal/status"
)

// AuthorizationKey is the metadata key that carries credentials.
const AuthorizationKey = "authorization"

// WithBearerToken makes a client send "authorization: Bearer <token>" with
// every call and stream.
func WithBearerToken(token string) Option {
	add := func(ctx context.Context) context.Context {
		return WithMetadata(ctx, AuthorizationKey, "Bearer "+token)
	}
	return func(o *options) {
		o.interceptors = append(o.interceptors, func(next UnaryFunc) UnaryFunc {
			return func(ctx context.Context, req *Request) (*Response, error) {
				req.Metadata = append(req.Metadata[:len(req.Metadata):len(req.Metadata)], Pair{Key: AuthorizationKey, Value: "Bearer " + token})
				return next(ctx, req)
			}
		})
		o.streamInterceptors = append(o.streamInterceptors, StreamInterceptor{Open: func(next StreamOpenFunc) StreamOpenFunc {
			return func(ctx context.Context, req *StreamRequest) (Stream, error) {
				return next(add(ctx), req)
			}
		}})
	}
}

// TokenValidator checks a bearer token. It returns the context the handler
// should run with (e.g. carrying the caller's identity) or an error; a
// plain error becomes Unauthenticated.
type TokenValidator func(ctx context.Context, token string) (context.Context, error)

// WithBearerAuth makes a server require "authorization: Bearer <token>" on
// every call and stream and check it with validate. The built-in catalog
// function is exempt so that tools can list functions.
func WithBearerAuth(validate TokenValidator) Option {
	check := func(ctx context.Context, fn string, md Metadata) (context.Context, error) {
		if fn == CatalogFunction {
			return ctx, nil
		}
		v := md.Get(AuthorizationKey)
		token, ok := strings.CutPrefix(v, "Bearer ")
		if !ok || token == "" {
			return nil, status.Errorf(Unauthenticated, "%s: missing bearer token in %q metadata", fn, AuthorizationKey)
		}
		nctx, err := validate(ctx, token)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				return nil, status.Wrap(Unauthenticated, nil, err, fn+": invalid bearer token")
			}
			return nil, err
		}
		if nctx == nil {
			nctx = ctx
		}
		return nctx, nil
	}
	return func(o *options) {
		o.interceptors = append(o.interceptors, func(next UnaryFunc) UnaryFunc {
			return func(ctx context.Context, req *Request) (*Response, error) {
				ctx, err := check(ctx, req.Function, req.Metadata)
				if err != nil {
					return nil, err
				}
				return next(ctx, req)
			}
		})
		o.streamInterceptors = append(o.streamInterceptors, StreamInterceptor{Handler: func(next StreamHandlerFunc) StreamHandlerFunc {
			return func(ctx context.Context, req *StreamRequest, s Stream) ([]byte, error) {
				ctx, err := check(ctx, req.Function, req.Metadata)
				if err != nil {
					return nil, err
				}
				return next(ctx, req, s)
			}
		}})
	}
}
