package tree

import (
	"context"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
	"github.com/arbor-rpc/arbor/value"
)

// The client side: each call goes through the Caller like any other (its
// interceptors, bearer token and, for a cluster client, its choice of
// node), to a server that ran Enable.

// encoded is a request tree as a call argument: its msgpack form.
type encoded struct{ n *request.Node }

// AppendMsgpack implements value.Marshaler.
func (e encoded) AppendMsgpack(b []byte, _ any) ([]byte, error) {
	if e.n == nil {
		return b, arbor.Errorf(arbor.InvalidArgument, "the request tree is nil")
	}
	return request.AppendMsgpack(b, e.n)
}

// text is Cradle JSON text as a call argument.
type text []byte

// AppendMsgpack implements value.Marshaler.
func (t text) AppendMsgpack(b []byte, _ any) ([]byte, error) { return value.AppendBytes(b, t), nil }

// raw is a result kept encoded.
type raw []byte

// ReadMsgpack implements value.Unmarshaler.
func (r *raw) ReadMsgpack(rd *value.Reader, _ any) error {
	b, err := rd.Skip()
	*r = append((*r)[:0], b...)
	return err
}

// Resolve sends the request tree in one call and decodes the root's
// result as R:
//
//	n := request.New("add+mem", request.New("add", 1, 2), 3)
//	sum, err := tree.Resolve[int](ctx, client, n)
//
// Errors name the path of the failing node.
func Resolve[R any](ctx context.Context, c arbor.Caller, n *request.Node) (R, error) {
	return arbor.Call1[R](ctx, c, ResolveID, encoded{n})
}

// ResolveJSON sends a request tree in Cradle JSON form and returns the
// root's msgpack-encoded result.
func ResolveJSON(ctx context.Context, c arbor.Caller, cradleJSON []byte) ([]byte, error) {
	r, err := arbor.Call1[raw](ctx, c, ResolveID, text(cradleJSON))
	return r, err
}

// Submit starts resolving the tree on the server and returns the id to
// ask about it with.
func Submit(ctx context.Context, c arbor.Caller, n *request.Node) (string, error) {
	return arbor.Call1[string](ctx, c, SubmitID, encoded{n})
}

// SubmitJSON is Submit for a tree in Cradle JSON form.
func SubmitJSON(ctx context.Context, c arbor.Caller, cradleJSON []byte) (string, error) {
	return arbor.Call1[string](ctx, c, SubmitID, text(cradleJSON))
}

// Status returns the status tree of a submitted tree: one node per
// request, with its state.
func Status(ctx context.Context, c arbor.Caller, id string) (*resolve.Status, error) {
	return arbor.Call1[*resolve.Status](ctx, c, StatusID, id)
}

// Result waits for a submitted tree and decodes its result as R.
func Result[R any](ctx context.Context, c arbor.Caller, id string) (R, error) {
	return arbor.Call1[R](ctx, c, ResultID, id)
}

// ResultRaw waits for a submitted tree and returns its msgpack-encoded
// result.
func ResultRaw(ctx context.Context, c arbor.Caller, id string) ([]byte, error) {
	r, err := arbor.Call1[raw](ctx, c, ResultID, id)
	return r, err
}

// Cancel cancels a submitted tree; path names the node meant ("" for the
// root, "args.tuple_element2", …), but the whole tree stops.
func Cancel(ctx context.Context, c arbor.Caller, id, path string) error {
	_, err := arbor.Call2[bool](ctx, c, CancelID, id, path)
	return err
}

// Release drops a submitted tree, cancelling it if it still runs.
func Release(ctx context.Context, c arbor.Caller, id string) error {
	_, err := arbor.Call1[bool](ctx, c, ReleaseID, id)
	return err
}

// Stats returns the server's resolution counters: cache hits and misses,
// cache sizes, and how many times each function ran.
func Stats(ctx context.Context, c arbor.Caller) (resolve.Stats, error) {
	return arbor.Call0[resolve.Stats](ctx, c, StatsID)
}

// Catalog lists the functions request trees may name on the server.
func Catalog(ctx context.Context, c arbor.Caller) ([]Function, error) {
	return arbor.Call0[[]Function](ctx, c, CatalogID)
}
