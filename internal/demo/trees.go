package demo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"sync"

	"github.com/arbor-rpc/arbor"
)

// The request-tree part of the demo catalog: the functions the example
// request of Cradle's documentation names, and arithmetic at every caching
// level so that caching can be watched from outside (arbor.resolve_catalog
// shows how often each ran).
//
//	uuid_100_2 (make_blob_coro)                 Payload → bytes: the payload as a blob
//	rq_post_iss_object+full (post_iss_object)   (context id, type name, blob) → object id
//	get_iss_object(string) bytes                an object's blob, by id
//	math_add+LEVEL(int, int) int                the sum, LEVEL none, mem, full, mem_vb, full_vb
//	math_mul+LEVEL(int, int) int                the product, at the same levels
//
// The example request
//
//	{"uuid": "rq_post_iss_object+full", "title": "post_iss_object",
//	 "args": {"tuple_element0": "123", "tuple_element1": "string",
//	          "tuple_element2": {"uuid": "uuid_100_2", "title": "make_blob_coro",
//	                             "args": {"tuple_element0": {"value0": "payload"}}}}}
//
// resolves to the id of the object "payload" of type "string".

// The ids of the request-tree demo functions.
const (
	MakeBlobID      = "uuid_100_2"
	PostISSObjectID = "rq_post_iss_object+full"
	GetISSObjectID  = "get_iss_object"
)

// Levels are the caching suffixes the arithmetic functions come in.
var Levels = []string{"none", "mem", "full", "mem_vb", "full_vb"}

// Payload is Cradle's one-member struct {"value0": …} with a string.
type Payload struct {
	Value0 string `msgpack:"value0" json:"value0"`
}

// maxObjectBytes bounds the object store: a demo must not grow without
// end.
const maxObjectBytes = 64 << 20

// objectStore is the server's content-addressed store of ISS objects.
type objectStore struct {
	mu    sync.Mutex
	objs  map[string][]byte
	bytes int
}

// ObjectID is the id post_iss_object gives an object: the hex SHA-256 of
// the type name (length-prefixed, so that no two (type, blob) pairs
// collide) and the blob.
func ObjectID(typeName string, blob []byte) string {
	h := sha256.New()
	h.Write(binary.AppendUvarint(nil, uint64(len(typeName))))
	h.Write([]byte(typeName))
	h.Write(blob)
	return hex.EncodeToString(h.Sum(nil))
}

func (o *objectStore) post(_ context.Context, contextID, typeName string, blob []byte) (string, error) {
	if contextID == "" {
		return "", arbor.Errorf(arbor.InvalidArgument, "post_iss_object: empty context id")
	}
	id := ObjectID(typeName, blob)
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.objs[id]; ok {
		return id, nil
	}
	if o.bytes+len(blob) > maxObjectBytes {
		return "", arbor.Errorf(arbor.ResourceExhausted, "post_iss_object: the demo object store is full (%d bytes)", maxObjectBytes)
	}
	o.objs[id] = append([]byte(nil), blob...)
	o.bytes += len(blob)
	return id, nil
}

func (o *objectStore) get(_ context.Context, id string) ([]byte, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.objs[id]
	if !ok {
		return nil, arbor.Errorf(arbor.NotFound, "get_iss_object: no object %q", id)
	}
	return b, nil
}

func makeBlob(_ context.Context, p Payload) ([]byte, error) { return []byte(p.Value0), nil }

// mul is the product, or OutOfRange when it does not fit an int.
func mul(_ context.Context, a, b int) (int, error) {
	p := a * b
	if a != 0 && (p/a != b || (a == -1 && b == math.MinInt) || (b == -1 && a == math.MinInt)) {
		return 0, arbor.Errorf(arbor.OutOfRange, "multiply: %d × %d overflows int", a, b)
	}
	return p, nil
}

// registerTrees adds the request-tree demo functions to s.
func registerTrees(s *arbor.Server) error {
	store := &objectStore{objs: make(map[string][]byte)}
	errs := []error{
		arbor.Handle1(s, MakeBlobID, makeBlob, arbor.WithTitle("make_blob_coro"), arbor.Idempotent()),
		arbor.Handle3(s, PostISSObjectID, store.post, arbor.WithTitle("post_iss_object"), arbor.Idempotent()),
		arbor.Handle1(s, GetISSObjectID, store.get, arbor.WithTitle("get_iss_object"), arbor.Idempotent()),
	}
	for _, l := range Levels {
		errs = append(errs,
			arbor.Handle2(s, "math_add+"+l, add, arbor.WithTitle("add"), arbor.Idempotent()),
			arbor.Handle2(s, "math_mul+"+l, mul, arbor.WithTitle("multiply"), arbor.Idempotent()))
	}
	return errors.Join(errs...)
}
