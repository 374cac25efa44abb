package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/request"
	"github.com/arbor-rpc/arbor/resolve"
)

// ResolveID is the built-in server stream with which a member resolves a
// subtree for another: arbor.cluster.resolve(ResolveArgs) stream
// ResolveMessage. The messages carry the subtree's status changes, if
// asked for, and the last one its result or error; a stream that ends
// otherwise means the member failed. Cancelling the stream cancels the
// work.
const ResolveID = "arbor.cluster.resolve"

// ResolveArgs is the argument of ResolveID.
type ResolveArgs struct {
	// Tree is the subtree in request's msgpack form (request.AppendMsgpack).
	Tree []byte `msgpack:"tree"`
	// Path is the subtree's position in its tree (argument indexes from
	// the root), for the paths of statuses and errors.
	Path []int `msgpack:"path"`
	// Report asks for the status changes of the subtree's requests.
	Report bool `msgpack:"report"`
}

// ResolveMessage is one message of a ResolveID stream.
type ResolveMessage struct {
	// Changes are status changes, in order (full paths, no subrequests).
	Changes []*resolve.Status `msgpack:"changes,omitempty"`
	// Done marks the last message: Result is the subtree's msgpack
	// result, or Error says why it failed.
	Done   bool         `msgpack:"done,omitempty"`
	Result []byte       `msgpack:"result,omitempty"`
	Error  *RemoteError `msgpack:"error,omitempty"`
}

// RemoteError is a subtree's error as it crosses between members.
type RemoteError struct {
	Code      uint32 `msgpack:"code"`
	Message   string `msgpack:"message"`
	Retryable bool   `msgpack:"retryable,omitempty"`
}

// maxPendingChanges bounds the status changes a subtree's stream holds
// for a slow reader; past it, a request's change replaces its previous
// one (the reader gets the latest state of each, not every step).
const maxPendingChanges = 4096

// serveResolve serves ResolveID: it resolves the subtree here (its root
// pinned) and streams what happens.
func (d *Distributor) serveResolve(ctx context.Context, in ResolveArgs, out *arbor.Sender[ResolveMessage]) error {
	n, err := parseSubtree(in, d.engine.Limits())
	if err != nil {
		return err
	}
	d.self.Start()
	start := time.Now()
	defer func() { d.self.Done(time.Since(start), time.Now()) }()
	if !in.Report {
		res, err := d.engine.ResolveHere(ctx, n, in.Path, nil)
		return out.Send(final(res, err))
	}
	q := &changeQueue{wake: make(chan struct{}, 1), index: map[string]int{}}
	type outcome struct {
		res []byte
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan outcome, 1)
	go func() {
		res, err := d.engine.ResolveHere(ctx, n, in.Path, q.push)
		done <- outcome{res, err}
	}()
	for {
		select {
		case <-q.wake:
			if batch := q.take(); len(batch) > 0 {
				if err := out.Send(ResolveMessage{Changes: batch}); err != nil {
					cancel() // nobody reads: stop the work
					<-done
					return err
				}
			}
		case o := <-done:
			m := final(o.res, o.err)
			m.Changes = q.take()
			return out.Send(m)
		}
	}
}

// parseSubtree checks what a peer sent: one tree within the limits, and a
// path that can be its position in a tree within them. Errors are
// InvalidArgument, naming what and where.
func parseSubtree(in ResolveArgs, lim request.Limits) (*request.Node, error) {
	lim = lim.OrDefault()
	if len(in.Path) > lim.MaxDepth {
		return nil, arbor.Errorf(arbor.InvalidArgument, "%s: subtree path has %d levels, more than the depth limit %d", ResolveID, len(in.Path), lim.MaxDepth)
	}
	for i, x := range in.Path {
		if x < 0 || x > maxArgIndex {
			return nil, arbor.Errorf(arbor.InvalidArgument, "%s: subtree path level %d: argument index %d out of range", ResolveID, i, x)
		}
	}
	n, used, err := request.ParseMsgpack(in.Tree, lim)
	if err != nil {
		return nil, err
	}
	if used != len(in.Tree) {
		return nil, arbor.Errorf(arbor.InvalidArgument, "%s: %d byte(s) after the subtree (at byte %d)", ResolveID, len(in.Tree)-used, used)
	}
	return n, nil
}

// maxArgIndex bounds an argument index in a subtree's path: no function
// takes more arguments than a frame could carry.
const maxArgIndex = 1 << 20

func final(res []byte, err error) ResolveMessage {
	if err != nil {
		var e *arbor.Error
		if !errors.As(err, &e) {
			e = arbor.Errorf(arbor.Unknown, "%v", err)
		}
		return ResolveMessage{Done: true, Error: &RemoteError{Code: uint32(e.Code), Message: e.Message, Retryable: e.Retryable}}
	}
	return ResolveMessage{Done: true, Result: res}
}

// changeQueue holds status changes between the resolving goroutines,
// which never wait, and the stream's sender.
type changeQueue struct {
	mu      sync.Mutex
	pending []*resolve.Status
	index   map[string]int // path → position in pending, once over the bound
	wake    chan struct{}
}

func (q *changeQueue) push(s *resolve.Status) {
	q.mu.Lock()
	if len(q.pending) >= maxPendingChanges {
		if i, ok := q.index[s.Path]; ok {
			q.pending[i] = s
			q.mu.Unlock()
			return
		}
	}
	q.index[s.Path] = len(q.pending)
	q.pending = append(q.pending, s)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *changeQueue) take() []*resolve.Status {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.pending
	q.pending = nil
	clear(q.index)
	return b
}

// remotePlace is a member a request resolves on: resolve.Place over the
// ResolveID stream.
type remotePlace struct {
	d     *Distributor
	name  string
	stats *Stats
}

func (p *remotePlace) Name() string { return p.name }

// Resolve implements resolve.Place.
func (p *remotePlace) Resolve(ctx context.Context, n *request.Node, path []int, report func(*resolve.Status)) ([]byte, error) {
	tree, err := request.AppendMsgpack(nil, n)
	if err != nil {
		return nil, err
	}
	p.stats.Start()
	start := time.Now()
	defer func() { p.stats.Done(time.Since(start), time.Now()) }()
	s, err := arbor.CallServerStream[ResolveMessage](WithMember(ctx, p.name), p.d.client, ResolveID,
		ResolveArgs{Tree: tree, Path: path, Report: report != nil})
	if err != nil {
		return nil, p.failed(ctx, err)
	}
	defer s.Close()
	for {
		m, err := s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = arbor.Errorf(arbor.Unavailable, "the stream ended without a result")
			}
			return nil, p.failed(ctx, err)
		}
		if report != nil {
			for _, c := range m.Changes {
				if c != nil {
					report(c)
				}
			}
		}
		if m.Done {
			if m.Error != nil {
				return nil, &arbor.Error{Code: arbor.Code(m.Error.Code), Message: m.Error.Message, Retryable: m.Error.Retryable}
			}
			return m.Result, nil
		}
	}
}

// failed classifies a stream that broke: the member failed (the engine
// places the request again) unless this side gave up or sent something
// the member could not take.
func (p *remotePlace) failed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	var e *arbor.Error
	if errors.As(err, &e) && e.Code == arbor.InvalidArgument {
		return err
	}
	msg := err.Error()
	if e != nil {
		msg = e.Message
	}
	return &arbor.Error{Code: arbor.Unavailable, Message: fmt.Sprintf("member %s: %s", p.name, msg),
		Cause: fmt.Errorf("%w: %w", resolve.ErrNodeFailed, err)}
}
