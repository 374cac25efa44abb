package main

import (
	"context"
	"testing"
	"time"
)

// Every variant of the proto section echoes correctly.
func TestProtoRunners(t *testing.T) {
	if startProto == nil {
		t.Skip("built without Arbor")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := startProto(ctx, makePayload(64))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, v := range protoVariants {
		for range 3 {
			if err := r.Op(v)(ctx); err != nil {
				t.Fatalf("%s: %v", v, err)
			}
		}
		if r.Note(v) == "" {
			t.Errorf("%s has no note", v)
		}
	}
}
