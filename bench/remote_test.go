package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Every system the procs and connscale sections run in a child process
// serves and is dialed as they do it (here in one process): an echo
// comes back whole.
func TestRemoteSystems(t *testing.T) {
	if len(remoteRegistry) == 0 {
		t.Fatal("no remote systems registered")
	}
	payload := makePayload(64)
	for name, s := range remoteRegistry {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			addr, stop, err := s.serve(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			r, err := s.dial(ctx, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			out, err := r.Call(ctx, payload)
			if err != nil || !bytes.Equal(out, payload) {
				t.Fatalf("echo: %d bytes, %v", len(out), err)
			}
		})
	}
}
