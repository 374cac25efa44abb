package resolve

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// An error names the path of the failing node in the caller's tree, also
// when the caller joined an identical request that another tree, where it
// sits elsewhere, started.
func TestJoinedErrorNamesJoinersPath(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	cat := testCatalog()
	cat["fails+mem"] = intFunc(1, func(ctx context.Context, _ []int64) (int64, error) {
		started <- struct{}{}
		<-release
		return 0, status.New(status.FailedPrecondition, "no")
	})
	e := newEngine(t, Config{Catalog: cat})
	ctx := testContext(t)
	leader := make(chan error, 1)
	go func() {
		_, err := e.Resolve(ctx, request.New("add", 1, request.New("fails+mem", 7)))
		leader <- err
	}()
	<-started
	joiner := make(chan error, 1)
	go func() {
		_, err := e.Resolve(ctx, request.New("fails+mem", 7))
		joiner <- err
	}()
	for e.Stats().Deduplicated == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-leader; !strings.Contains(err.Error(), "args.tuple_element1 (fails+mem): no") {
		t.Errorf("leader: %v", err)
	}
	if err := <-joiner; err == nil || !strings.Contains(err.Error(), "request (fails+mem): no") || strings.Contains(err.Error(), "tuple_element") {
		t.Errorf("joiner's error names another tree's path: %v", err)
	}
}
