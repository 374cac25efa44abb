// Package tree is request-tree resolution as users see it: enabling it on
// an arbor.Server (Enable), and sending trees to one through any
// arbor.Caller (Resolve, Submit, Status, Result, Cancel, Release, Stats,
// Catalog), and watching a submitted tree's status as it changes
// (WatchRequest: pushed, not polled).
//
// A request tree is a call whose arguments may be calls (package
// request builds them, in Go or Cradle's JSON). The server resolves the
// whole tree in one round trip: subrequests run concurrently, identical
// ones run once, and results are cached by content at the level the
// function id's suffix names (+none, +mem, +full, +mem_vb, +full_vb).
// Functions in a tree are the server's own, registered as usual
// (arbor.HandleN); they run through the server's interceptors as if
// called one by one.
// A generated function's message argument is keyed by its value, not its
// encoding (protojson in a JSON tree, binary from Go, nil or empty): see
// arborproto.Normalize.
//
//	engine, err := tree.Enable(srv, tree.Config{MemoryCacheBytes: 64 << 20})
//	defer engine.Close()
//
//	n := request.New("add+mem", request.New("add+mem", 1, 2), 3)
//	sum, err := tree.Resolve[int](ctx, client, n) // 6; the second time from cache
//
// It is not the engine (package resolve) nor the caches (package cache):
// it wires them to a server and puts the built-in functions on the wire.
package tree
