//go:build !noarbor

package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/tree"
)

// TestTree checks the tree section's runner: every variant resolves to the
// right sum, alone and from 16 goroutines on the one connection; the cached
// tree's functions run only for the first resolution, the uncached tree's
// on every one; a tree the cache has not seen still gets its own sum.
func TestTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := startTree(ctx)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer r.Close()
	at := r.(*arborTree)

	// The trees as the section sends them, resolved directly.
	for _, fn := range []string{treeFnMem, treeFnNone} {
		if got, err := tree.Resolve[int](ctx, at.c, tree7(fn)); err != nil || got != treeSum {
			t.Fatalf("Resolve(tree7(%s)) = %d, %v; want %d", fn, got, err, treeSum)
		}
	}
	if got, err := arbor.Call2[int](ctx, at.c, treeFnNone, 1, 2); err != nil || got != unarySum {
		t.Fatalf("Call2(%s, 1, 2) = %d, %v; want %d", treeFnNone, got, err, unarySum)
	}
	if n := r.Runs(treeFnMem); n != treeNodes {
		t.Errorf("%s ran %d times for the first cached tree, want %d", treeFnMem, n, treeNodes)
	}

	noneBefore := r.Runs(treeFnNone)
	const goroutines, each = 16, 20
	for _, v := range treeVariants {
		op := r.Op(v)
		if op == nil {
			t.Fatalf("no op for %s", v)
		}
		if err := op(ctx); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if err := op(ctx); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", v, err)
		}
	}
	if r.Op("nope") != nil {
		t.Error("op for an unknown variant")
	}
	if n := r.Runs(treeFnMem); n != treeNodes {
		t.Errorf("%s ran %d times in all, want %d: cached trees were not served from the cache", treeFnMem, n, treeNodes)
	}
	if n, want := r.Runs(treeFnNone)-noneBefore, int64(treeNodes*(1+goroutines*each)); n != want {
		t.Errorf("%s ran %d times for %d uncached trees, want %d", treeFnNone, n, 1+goroutines*each, want)
	}

	// A cached root over a new uncached subtree: computed, not a stale hit.
	mixed := request.New(treeFnMem, request.New(treeFnNone, 10, 20), 5)
	for range 2 {
		if got, err := tree.Resolve[int](ctx, at.c, mixed); err != nil || got != 35 {
			t.Fatalf("Resolve(mixed) = %d, %v; want 35", got, err)
		}
	}
	if err := checkSum("x", 35, 36, nil); err == nil || !strings.Contains(err.Error(), "wrong sum") {
		t.Errorf("checkSum of a wrong sum = %v", err)
	}
}

// TestTreeSection runs the section briefly and checks its report.
func TestTreeSection(t *testing.T) {
	if testing.Short() {
		t.Skip("measures")
	}
	var buf bytes.Buffer
	if err := runTree(&buf, config{dur: 40 * time.Millisecond, warm: 20 * time.Millisecond}, []int{1, 4}); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	out := buf.String()
	for _, want := range []string{
		"| unary | 1 |", "| tree-cached | 4 |", "| tree-uncached | 4 |",
		"| 1 | ", "| 4 | ", "in every cell): ",
		"cache check: math_add+mem ran 7 times in all",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("report warns:\n%s", out)
	}
}
