package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"testing"

	"github.com/arbor-rpc/arbor"
)

func TestObjectID(t *testing.T) {
	sum := sha256.Sum256(append([]byte{6}, "string"+"payload"...))
	if got := ObjectID("string", []byte("payload")); got != hex.EncodeToString(sum[:]) {
		t.Errorf("ObjectID = %s", got)
	}
	if ObjectID("ab", []byte("c")) == ObjectID("a", []byte("bc")) {
		t.Error("type name and blob are ambiguous")
	}
}

func TestTreeFunctionsDirectly(t *testing.T) {
	c, _ := start(t)
	ctx := testContext(t)
	blob, err := arbor.Call1[[]byte](ctx, c, MakeBlobID, Payload{Value0: "payload"})
	if err != nil || string(blob) != "payload" {
		t.Fatalf("make_blob_coro = %q, %v", blob, err)
	}
	id, err := arbor.Call3[string](ctx, c, PostISSObjectID, "123", "string", blob)
	if err != nil || id != ObjectID("string", blob) {
		t.Fatalf("post_iss_object = %q, %v", id, err)
	}
	got, err := arbor.Call1[[]byte](ctx, c, GetISSObjectID, id)
	if err != nil || string(got) != "payload" {
		t.Fatalf("get_iss_object = %q, %v", got, err)
	}
	if _, err := arbor.Call1[[]byte](ctx, c, GetISSObjectID, "nope"); arbor.CodeOf(err) != arbor.NotFound {
		t.Errorf("get_iss_object(nope) = %v", err)
	}
	if _, err := arbor.Call3[string](ctx, c, PostISSObjectID, "", "string", blob); arbor.CodeOf(err) != arbor.InvalidArgument {
		t.Errorf("empty context id: %v", err)
	}
	if p, err := arbor.Call2[int](ctx, c, "math_mul+full_vb", 6, 7); err != nil || p != 42 {
		t.Errorf("math_mul = %d, %v", p, err)
	}
}

func TestObjectStoreBound(t *testing.T) {
	o := &objectStore{objs: make(map[string][]byte)}
	big := make([]byte, maxObjectBytes/2+1)
	if _, err := o.post(context.Background(), "c", "a", big); err != nil {
		t.Fatal(err)
	}
	if _, err := o.post(context.Background(), "c", "a", big); err != nil {
		t.Errorf("posting the same object again: %v", err)
	}
	if _, err := o.post(context.Background(), "c", "b", big); arbor.CodeOf(err) != arbor.ResourceExhausted {
		t.Errorf("over the bound: %v", err)
	}
}

func TestTreeFunctionsTitled(t *testing.T) {
	srv := arbor.NewServer()
	if err := Register(srv); err != nil {
		t.Fatal(err)
	}
	titles := map[string]string{}
	for _, f := range srv.Catalog() {
		titles[f.ID] = f.Title
	}
	if titles[PostISSObjectID] != "post_iss_object" || titles[MakeBlobID] != "make_blob_coro" || titles["math_add+mem"] != "add" {
		t.Errorf("titles %v", titles)
	}
}

// The demo's arithmetic reports overflow instead of wrapping around.
func TestArithmeticOverflow(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		f    func(context.Context, int, int) (int, error)
		a, b int
	}{{add, math.MaxInt, 1}, {add, math.MinInt, -1}, {mul, math.MaxInt / 2, 3}, {mul, -1, math.MinInt}, {mul, math.MinInt, -1}} {
		if v, err := c.f(ctx, c.a, c.b); arbor.CodeOf(err) != arbor.OutOfRange {
			t.Errorf("%d, %d: %d %v", c.a, c.b, v, err)
		}
	}
	if v, err := mul(ctx, -4, 5); err != nil || v != -20 {
		t.Errorf("mul(-4, 5) = %d %v", v, err)
	}
	if v, err := add(ctx, math.MaxInt, -1); err != nil || v != math.MaxInt-1 {
		t.Errorf("add = %d %v", v, err)
	}
}
