// Package bridge serves a server's generated functions (those generated
// from .proto services by arbor gen or protoc-gen-arbor) over HTTP to
// every gRPC, gRPC-Web and Connect client: gRPC over HTTP/2 (h2c or TLS),
// gRPC-Web, and Connect with JSON or binary over HTTP/1.1 and HTTP/2, by
// way of connect-go. grpcurl, buf curl, a plain curl with JSON, and
// generated clients in any language call them as gRPC services.
//
// A call over HTTP runs in process on the same handler as one over
// Arbor's wire, through the same server interceptors (Server.Invoke and
// Server.InvokeStream): authentication, logging and metrics see both
// alike. Errors keep their codes (Arbor's codes are gRPC's numbering);
// request headers become the call's metadata (Authorization included, so
// WithBearerToken servers check HTTP callers too); deadlines arrive from
// grpc-timeout and Connect-Timeout-Ms; trailers set with arbor.SetTrailer
// go back as the response's trailers (with an error, as its metadata);
// all four stream kinds are served.
// Messages pass as protobuf binary without being decoded in the bridge;
// JSON (Connect JSON, gRPC+json) is converted with protojson.
//
// The handler also serves gRPC server reflection (v1 and v1alpha), so
// grpcurl list and describe work with no .proto at hand.
//
//	h := bridge.New(srv, bridge.Config{})
//	hs := bridge.NewHTTPServer(h) // HTTP/1.1 and unencrypted HTTP/2
//	err := hs.Serve(listener)
//
// NewGRPCServer serves the same functions to gRPC clients alone
// (application/grpc, protobuf binary) on a native HTTP/2 server, built
// on x/net/http2's Framer and HPACK without net/http or connect-go:
// the faster path for grpc-go and other gRPC clients. It speaks h2c
// with prior knowledge on plain connections and HTTP/2 over TLS (ALPN
// "h2"), enforces flow control both ways, bounds every size and queue
// (message, header list, frame, concurrent streams, pending writes) and
// drains with GOAWAY; it does not serve gRPC-Web, Connect, JSON,
// compressed messages or server reflection (NewHTTPServer does):
//
//	gs := bridge.NewGRPCServer(h, bridge.GRPCConfig{})
//	err := gs.Serve(listener) // until gs.Shutdown(ctx) or gs.Close()
//
// The connect-go path is not a gRPC implementation of its own (connect-go
// speaks the protocols). Both serve only functions described by .proto
// files: hand-written functions have no schema a gRPC client could use.
package bridge
