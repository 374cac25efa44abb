// Package bridgetest tests Arbor's gRPC bridge (package bridge) with
// grpc-go's own client and with grpcurl. It is a module of its own so that
// grpc-go never enters Arbor's main module; it has no code but its tests.
package bridgetest
