package resolve

import (
	"context"
	"testing"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/request"
)

// A function that panics fails its request with Internal, as a direct call
// of it does (conn recovers handler panics), wherever the engine runs it:
// in a single flight's goroutine (cached levels) or a subrequest's. Before
// the fix the panic escaped in a goroutine of the engine's and took the
// whole process (the server) down.
func TestPanickingFunctionIsAnError(t *testing.T) {
	cat := testCatalog()
	boom := Func{Args: []string{"int"}, Result: "int", Invoker: InvokerFunc(func(context.Context, []byte) ([]byte, error) {
		panic("handler bug")
	})}
	cat["boom+mem"] = boom
	cat["boom"] = boom
	e := newEngine(t, Config{Catalog: cat})
	for _, tree := range []*request.Node{
		request.New("boom+mem", 1), // runs in the flight's goroutine
		request.New("add", request.New("boom", 1), request.New("boom", 2)), // subrequests in goroutines
	} {
		_, err := e.Resolve(testContext(t), tree)
		if status.CodeOf(err) != status.Internal {
			t.Errorf("%v: %v, want Internal", tree, err)
		}
	}
	if _, err := e.Resolve(testContext(t), request.New("boom+mem", 1)); status.CodeOf(err) != status.Internal {
		t.Errorf("again (the panic is not cached): %v", err)
	}
}
