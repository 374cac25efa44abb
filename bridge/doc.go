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
// It is not a gRPC implementation (connect-go speaks the protocols) and
// serves only functions described by .proto files: hand-written functions
// have no schema a gRPC client could use.
package bridge
