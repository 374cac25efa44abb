package resolve

import (
	"context"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

type userKey struct{}

// authByUser denies "secret" to everyone but alice.
func authByUser(ctx context.Context, id string) error {
	if id == "secret" && ctx.Value(userKey{}) != "alice" {
		return status.Errorf(status.PermissionDenied, "no %s for you", id)
	}
	return nil
}

// A cached parent must not hand bob the result of a subrequest he may not
// have: Authorize is asked about every request of the tree.
func TestAuthorizeSeesSubrequestsOfCachedParent(t *testing.T) {
	cat := testCatalog()
	cat["secret"] = intFunc(1, add)
	e := newEngine(t, Config{Catalog: cat, Authorize: authByUser})
	tree := request.New("add+mem", 1, request.New("secret", 2))
	alice := context.WithValue(testContext(t), userKey{}, "alice")
	if _, err := e.Resolve(alice, tree); err != nil {
		t.Fatalf("alice: %v", err)
	}
	bob := context.WithValue(testContext(t), userKey{}, "bob")
	if res, err := e.Resolve(bob, tree); status.CodeOf(err) != status.PermissionDenied {
		t.Errorf("bob got %x, %v; want PermissionDenied for args.tuple_element1 (secret)", res, err)
	}
}

// Joining a run in flight must not skip Authorize for the joiner's
// subrequests either: the leader's run authorized them for the leader.
func TestAuthorizeSeesSubrequestsOfJoinedRun(t *testing.T) {
	b := newBlocker()
	cat := testCatalog()
	cat["secret"] = b.fn(1)
	e := newEngine(t, Config{Catalog: cat, Authorize: authByUser})
	tree := request.New("add+mem", 1, request.New("secret", 2))
	alice := context.WithValue(testContext(t), userKey{}, "alice")
	done := make(chan error, 1)
	go func() {
		_, err := e.Resolve(alice, tree)
		done <- err
	}()
	<-b.started
	bob := context.WithValue(testContext(t), userKey{}, "bob")
	bobDone := make(chan error, 1)
	go func() {
		_, err := e.Resolve(bob, tree)
		bobDone <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for e.Stats().Deduplicated == 0 && time.Now().Before(deadline) {
		select {
		case err := <-bobDone: // refused before joining: right
			close(b.release)
			<-done
			if status.CodeOf(err) != status.PermissionDenied {
				t.Errorf("bob: %v, want PermissionDenied", err)
			}
			return
		default:
		}
		time.Sleep(time.Millisecond)
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatalf("alice: %v", err)
	}
	if err := <-bobDone; status.CodeOf(err) != status.PermissionDenied {
		t.Errorf("bob joined alice's run and got %v; want PermissionDenied", err)
	}
}
