// Package healthgrpc serves a health.Checker in gRPC's health protocol
// (grpc.health.v1.Health/Check and Watch) over HTTP, with connect-go: the
// gRPC, gRPC-Web and Connect protocols on one handler, for Kubernetes
// gRPC probes and load balancers. Mount it on an HTTP server that speaks
// HTTP/2 (h2c for plain text): the admin endpoint does, and so can the
// HTTP bridge.
//
// It is kept apart from package health so that connect-go enters only
// the builds that serve HTTP.
package healthgrpc

import (
	"context"
	"errors"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"

	"github.com/arbor-rpc/arbor/health"
)

// NewHandler returns the path to mount the handler on
// ("/grpc.health.v1.Health/") and the handler. A service name is
// answered with its status; "" with the server's; an unknown one with
// NotFound, as the protocol says.
func NewHandler(c *health.Checker, opts ...connect.HandlerOption) (string, http.Handler) {
	return grpchealth.NewHandler(checker{c}, opts...)
}

type checker struct{ c *health.Checker }

func (k checker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	s, err := k.c.Status(req.Service)
	if errors.Is(err, health.ErrUnknownService) {
		return nil, connect.NewError(connect.CodeNotFound, err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	return &grpchealth.CheckResponse{Status: toGRPC(s)}, nil
}

// Watch implements grpchealth.Watcher: the handler re-checks on every
// status change.
func (k checker) Watch(ctx context.Context, req *grpchealth.CheckRequest, onChange func()) (func(), error) {
	if _, err := k.c.Status(req.Service); errors.Is(err, health.ErrUnknownService) {
		return nil, connect.NewError(connect.CodeNotFound, err)
	}
	return k.c.Watch(onChange), nil
}

func toGRPC(s health.Status) grpchealth.Status {
	switch s {
	case health.Serving:
		return grpchealth.StatusServing
	case health.NotServing:
		return grpchealth.StatusNotServing
	}
	return grpchealth.StatusUnknown
}
