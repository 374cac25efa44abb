package arbor

import (
	"context"
	"io"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/wire"
)

// localSite is what an in-process call of a method (through a reference
// passed back to its exporter) has instead of a connection: the argument
// capabilities as references, and the result's as they are collected.
// It travels in the context, for the handler it names only.
type localSite struct {
	h      *handler
	args   *capDecoder
	result capEncoder
	// hasCaps says args holds references; taken that a run of the
	// handler took them (a second run, an interceptor calling next
	// twice, fails as over a connection: capsRerun).
	hasCaps, taken bool
}

type localSiteKey struct{}

func localSiteOf(ctx context.Context, h *handler) *localSite {
	ls, _ := ctx.Value(localSiteKey{}).(*localSite)
	if ls == nil || ls.h != h {
		return nil
	}
	return ls
}

// callLocal runs a method of one of this side's own services, reached
// through a reference that came back to its exporter: in process, with no
// round trip and no copy of the service. Capabilities go both ways as
// references; the service's interceptors and serialization apply as for
// a remote caller.
func callLocal(ctx context.Context, svc *Service, req *Request) (*Response, error) {
	if req.Kind.IsStream() {
		return nil, Errorf(Unimplemented, "%s: streams on a capability passed back to its exporter are not supported: call the service's methods with CallN or GoN (they run in process)", req.ID)
	}
	if len(req.promises) > 0 {
		return nil, Errorf(Unimplemented, "%s: promise arguments on a capability passed back to its exporter are not supported: Wait for them first", req.ID)
	}
	if svc.forward != nil {
		return svc.forward.Call(ctx, req)
	}
	if req.Async {
		// GoN: the call runs on its own goroutine, as a remote one would
		// run on the peer; the promise completes when it returns.
		cctx, cancel := context.WithCancel(ctx)
		a, complete := conn.NewLocalAsync(cancel)
		lr := &localResult{}
		now := *req
		now.Async = false
		go func() {
			defer cancel()
			resp, err := callLocal(cctx, svc, &now)
			if err != nil {
				complete(nil, err)
				return
			}
			lr.refs = resp.local
			complete(resp.Result, nil)
		}()
		return &Response{async: a, localRes: lr}, nil
	}
	h := svc.method(req.ID)
	if h == nil {
		return nil, &Error{Code: Unimplemented, Category: ErrUnknownMethod, Message: svc.name + " has no method " + quote([]byte(req.ID))}
	}
	if h.invoke == nil {
		return nil, Errorf(InvalidArgument, "%s is a %s method; open a stream to call it", req.ID, h.info.Kind)
	}
	handles := req.caps.handles()
	ls := &localSite{h: h, args: localDecoder(handles), hasCaps: len(handles) > 0}
	ctx = context.WithValue(ctx, localSiteKey{}, ls)
	ctx = context.WithValue(ctx, conn.MetadataKey, []wire.MD(req.Metadata))
	if svc.serialized.Load() {
		svc.serial.Lock()
		defer svc.serial.Unlock()
	}
	var res []byte
	var err error
	if inner := svc.interceptors(); inner != nil {
		var resp *Response
		resp, err = inner(ctx, &Request{ID: req.ID, Kind: req.Kind, Service: svc.name, Metadata: req.Metadata, Args: req.Args, h: h})
		if resp != nil {
			res = resp.Result
		}
	} else {
		res, err = h.invoke(ctx, nil, req.Args, nil)
	}
	ls.args.releaseUnused()
	if err != nil {
		ls.result.closeRefs()
		return nil, err
	}
	return &Response{Result: res, local: ls.result.transfer()}, nil
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
