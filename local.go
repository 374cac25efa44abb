package arbor

import (
	"context"
	"io"

	"github.com/arbor-rpc/arbor/conn"
)

// callLocal runs a method of one of this side's own services, reached
// through a reference that came back to its exporter: in process, with no
// round trip.
func callLocal(ctx context.Context, svc *Service, req *Request) (*Response, error) {
	if req.Kind.IsStream() || req.Async {
		return nil, Errorf(Unimplemented, "%s: streams and promises on a capability passed back to its exporter are not supported yet", req.ID)
	}
	if req.caps != nil && len(req.caps.entries) > 0 {
		return nil, Errorf(Unimplemented, "%s: passing capabilities to a capability passed back to its exporter is not supported yet", req.ID)
	}
	if svc.forward != nil {
		return svc.forward.Call(ctx, req)
	}
	h := svc.method(req.ID)
	if h == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: svc.name + " has no method " + quote([]byte(req.ID))}
	}
	if h.invoke == nil {
		return nil, Errorf(InvalidArgument, "%s is a %s method; open a stream to call it", req.ID, h.info.Kind)
	}
	res, err := h.invoke(ctx, nil, req.Args, nil)
	if err != nil {
		return nil, err
	}
	return &Response{Result: res}, nil
}

// rawStream is a connection's stream as a Stream, with Arbor errors.
type rawStream struct{ s *conn.Stream }

func (r rawStream) Context() context.Context { return r.s.Context() }
func (r rawStream) Send(msg []byte) error    { return streamError(r.s.Send(msg)) }
func (r rawStream) CloseSend() error         { return streamError(r.s.CloseSend()) }
func (r rawStream) Recv() ([]byte, error) {
	b, err := r.s.Recv()
	return b, streamError(err)
}

// streamError marks stream failures with the stream category, keeping
// io.EOF as is.
func streamError(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	e := asError(err)
	if e.Category == nil {
		c := *e
		c.Category = ErrStream
		return &c
	}
	return e
}
