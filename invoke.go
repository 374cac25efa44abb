package arbor

import "context"

// Function is a registered function, callable in-process with encoded
// arguments. Engines that call functions by id (request trees) use it.
type Function struct{ h *handler }

// Info describes the function.
func (f Function) Info() FunctionInfo { return f.h.info }

// Invoke runs the function with msgpack-encoded arguments (an array) and
// returns its msgpack-encoded result. Errors are *Error values with the
// same codes and messages a remote caller would see.
func (f Function) Invoke(ctx context.Context, args []byte) ([]byte, error) {
	if f.h.invoke == nil {
		return nil, Errorf(InvalidArgument, "%s is a %s function; it cannot be invoked as unary", f.h.info.ID, f.h.info.Kind)
	}
	return f.h.invoke(ctx, args, nil)
}

// Function returns the function registered under id.
func (s *Server) Function(id string) (Function, bool) {
	h := (*s.handlers.Load())[id]
	return Function{h}, h != nil
}
