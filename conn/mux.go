package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor/internal/status"
	"github.com/arbor-rpc/arbor/wire"
)

// muxConn is a transport connection with native streams (QUIC). On such a
// connection the net.Conn itself is the control stream (HELLO, PING,
// GOAWAY), and every call or stream travels on a native stream of its own:
// its CALL frame first, then DATA/END/CANCEL, and the callee's DATA/END and
// final RESULT or ERROR. The transport's own per-stream flow control
// replaces CREDIT frames, and a slow call cannot hold up the others.
type muxConn interface {
	OpenStream(ctx context.Context) (net.Conn, error)
	AcceptStream(ctx context.Context) (net.Conn, error)
}

var muxReaders = sync.Pool{New: func() any { return wire.NewReader(nil, 4096, wire.MaxMaxFrame) }}

func getMuxReader(r io.Reader, limit uint32) *wire.Reader {
	rd := muxReaders.Get().(*wire.Reader)
	rd.Reset(r)
	rd.SetLimit(limit)
	return rd
}

func putMuxReader(r *wire.Reader) {
	r.Reset(nil)
	muxReaders.Put(r)
}

type frameBuf struct{ b []byte }

var frameBufs = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 1024)} }}

// muxID allocates an id and checks the connection may start a call.
func (c *Conn) muxID() (uint64, error) {
	c.cmu.Lock()
	defer c.cmu.Unlock()
	if c.goingAway || c.Err() != nil {
		return 0, c.refusal()
	}
	id := c.nextID
	c.nextID += 2
	return id, nil
}

// openMux opens a native stream and sends the CALL frame on it.
func (c *Conn) openMux(ctx context.Context, id uint64, flags uint8, timeout time.Duration, function string, md []wire.MD, args []byte) (net.Conn, error) {
	qs, err := c.mux.OpenStream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, status.FromError(ctx.Err())
		}
		return nil, c.muxLost(err)
	}
	fb := frameBufs.Get().(*frameBuf)
	b, at := wire.BeginCall(fb.b[:0], id, timeout, function, md)
	b[at+5] = flags
	b = append(b, args...)
	wire.EndFrame(b, at)
	_, err = qs.Write(b)
	fb.b = b
	frameBufs.Put(fb)
	if err != nil {
		qs.Close()
		return nil, c.muxLost(err)
	}
	return qs, nil
}

// muxLost is the error for a failed native stream: the connection's own
// error if it has closed, else a stream error.
func (c *Conn) muxLost(err error) error {
	if cerr := c.Err(); cerr != nil {
		return cerr
	}
	if c.transportClosed() {
		// The whole connection went (QUIC reports it on every stream),
		// possibly before our control reader noticed: close it now so the
		// next call does not pick it again.
		e := status.Wrap(status.Unavailable, status.ErrConnection, err, "connection lost")
		c.closeWith(e)
		return e
	}
	return status.Wrap(status.Unavailable, status.ErrStream, err, "stream lost")
}

// transportClosed reports whether the native-stream connection itself has
// closed, waiting a moment for the transport to say so: a stream error
// caused by a connection close can surface just before it.
func (c *Conn) transportClosed() bool {
	d, ok := c.nc.(interface{ Done() <-chan struct{} })
	if !ok {
		return false
	}
	t := time.NewTimer(20 * time.Millisecond)
	defer t.Stop()
	select {
	case <-d.Done():
		return true
	case <-t.C:
		return false
	}
}

// callMux is Call on a connection with native streams.
func (c *Conn) callMux(ctx context.Context, timeout time.Duration, function string, md []wire.MD, args []byte) (*Reply, error) {
	id, err := c.muxID()
	if err != nil {
		return nil, err
	}
	qs, err := c.openMux(ctx, id, 0, timeout, function, md, args)
	if err != nil {
		return nil, err
	}
	defer qs.Close()
	var cancelled bool
	var cmu sync.Mutex
	stop := context.AfterFunc(ctx, func() {
		cmu.Lock()
		cancelled = true
		cmu.Unlock()
		writeCancel(qs, ctx.Err())
		qs.SetReadDeadline(time.Now()) // wake the read below
	})
	r := getMuxReader(qs, c.cfg.MaxFrame)
	h, p, err := r.Next()
	stop()
	cmu.Lock()
	wasCancelled := cancelled
	cmu.Unlock()
	if err != nil {
		putMuxReader(r)
		if wasCancelled {
			return nil, status.FromError(ctx.Err())
		}
		var we *wire.Error
		if errors.As(err, &we) {
			return nil, status.Wrap(status.Unavailable, status.ErrProtocol, err, "bad answer from peer")
		}
		return nil, c.muxLost(err)
	}
	c.recvFlag.Store(true)
	if h.Type != wire.TypeResult && h.Type != wire.TypeError || h.ID != id {
		putMuxReader(r)
		return nil, status.Wrap(status.Unavailable, status.ErrProtocol, nil, fmt.Sprintf("expected the answer to call %d, got %s for %d", id, h.Type, h.ID))
	}
	cl := getCall()
	perr := c.fillAnswer(cl, h, p)
	putMuxReader(r)
	if perr != nil {
		putCall(cl)
		return nil, status.Wrap(status.Unavailable, status.ErrProtocol, perr, "bad answer from peer")
	}
	if cl.trailer != nil {
		sinkTrailer(ctx, cl.trailer)
	}
	if cl.err != nil {
		err := cl.err
		putCall(cl)
		return nil, err
	}
	cl.conn = c
	return (*Reply)(cl), nil
}

// fillAnswer decodes a RESULT or ERROR frame into cl (no waiting involved).
func (c *Conn) fillAnswer(cl *call, h wire.Header, p []byte) error {
	if h.Flags&wire.FlagMetadata != 0 {
		block, rest, err := wire.SplitMetadata(h.Type, p)
		if err != nil {
			return err
		}
		if cl.trailer, err = wire.ParseMetadata(nil, block); err != nil {
			return err
		}
		p = rest
	}
	if h.Type == wire.TypeResult {
		cl.buf = append(cl.buf[:0], p...)
		return nil
	}
	e, err := wire.ParseError(p)
	if err != nil {
		return err
	}
	cl.err = remoteError(e)
	return nil
}

func writeCancel(w io.Writer, cause error) {
	if errors.Is(cause, context.DeadlineExceeded) {
		w.Write(wire.AppendFrame(nil, wire.TypeCancel, 0, 0, []byte{byte(status.DeadlineExceeded)}))
	} else {
		w.Write(wire.AppendHeader(nil, wire.Header{Type: wire.TypeCancel}))
	}
}

// openStreamMux is OpenStream on a connection with native streams.
func (c *Conn) openStreamMux(ctx context.Context, timeout time.Duration, function string, md []wire.MD, args []byte) (*Stream, error) {
	id, err := c.muxID()
	if err != nil {
		return nil, err
	}
	qs, err := c.openMux(ctx, id, wire.FlagStream, timeout, function, md, args)
	if err != nil {
		return nil, err
	}
	s := newStream(c, id, true, ctx)
	s.w = qs
	c.inflight.Add(1)
	c.loops.Add(1)
	go c.readMuxStream(qs, s)
	s.watch()
	return s, nil
}

// readMuxStream reads the callee's frames of an opened stream.
func (c *Conn) readMuxStream(qs net.Conn, s *Stream) {
	defer c.loops.Done()
	defer qs.Close()
	r := getMuxReader(qs, c.cfg.MaxFrame)
	defer putMuxReader(r)
	for {
		h, p, err := r.Next()
		if err != nil {
			if !s.isDone() {
				s.finish(nil, c.muxLost(err))
			}
			return
		}
		c.recvFlag.Store(true)
		switch h.Type {
		case wire.TypeData:
			if err := s.deliver(p); err != nil {
				s.finish(nil, status.Wrap(status.Unavailable, status.ErrProtocol, err, "stream"))
				return
			}
		case wire.TypeEnd:
			s.peerEnd()
		case wire.TypeResult, wire.TypeError:
			cl := getCall()
			perr := c.fillAnswer(cl, h, p)
			if perr != nil {
				s.finish(nil, status.Wrap(status.Unavailable, status.ErrProtocol, perr, "stream"))
			} else {
				s.trailer = cl.trailer
				if cl.trailer != nil {
					sinkTrailer(s.ctx, cl.trailer)
				}
				var res []byte
				if cl.err == nil {
					res = append([]byte(nil), cl.buf...)
				}
				s.finish(res, cl.err)
			}
			putCall(cl)
			return
		default:
			s.finish(nil, status.Wrap(status.Unavailable, status.ErrProtocol, nil, fmt.Sprintf("unexpected %s frame on a stream", h.Type)))
			return
		}
	}
}

// acceptMux accepts the peer's native streams, one call each.
func (c *Conn) acceptMux() {
	defer c.loops.Done()
	for {
		qs, err := c.mux.AcceptStream(c.life)
		if err != nil {
			return
		}
		c.loops.Add(1)
		c.muxStreams.Add(1)
		go c.serveMux(qs)
	}
}

// serveMux reads one native stream: its CALL, then CANCEL/DATA/END while
// the handler runs on a worker; the worker writes the answer and closes it.
func (c *Conn) serveMux(qs net.Conn) {
	defer c.loops.Done()
	defer c.muxStreams.Add(-1)
	defer qs.Close()
	r := getMuxReader(qs, c.cfg.MaxFrame)
	defer putMuxReader(r)
	h, p, err := r.Next()
	if err != nil || h.Type != wire.TypeCall {
		qs.Close()
		return
	}
	c.recvFlag.Store(true)
	sc, refusal, err := c.admit(h, p, qs)
	if err != nil {
		c.cfg.Logger.Warn("arbor: bad CALL on a stream", "remote", c.nc.RemoteAddr().String(), "err", err)
		qs.Write(wire.AppendError(nil, h.ID, wire.ErrorPayload{Code: uint32(status.InvalidArgument), Message: []byte(err.Error())}))
		qs.Close()
		return
	}
	if refusal != nil {
		qs.Write(wire.AppendError(nil, h.ID, wire.ErrorPayload{Code: uint32(refusal.Code), Retryable: refusal.Retryable, Message: []byte(refusal.Message)}))
		qs.Close()
		return
	}
	st := sc.in.Stream
	ctx := sc.ctx
	id := h.ID
	c.dispatchCall(sc)
	// From here sc belongs to the worker; only st, ctx and id are used.
	for {
		h, p, err := r.Next()
		if err != nil {
			return // answered and closed, or the peer went away (its CANCEL or reset ends the handler)
		}
		c.recvFlag.Store(true)
		switch {
		case h.Type == wire.TypeCancel:
			cause := context.Canceled
			if len(p) == 1 && p[0] == byte(status.DeadlineExceeded) {
				cause = context.DeadlineExceeded
			}
			ctx.cancel(cause)
		case st != nil && h.Type == wire.TypeData:
			if err := st.deliver(p); err != nil {
				ctx.cancel(context.Canceled)
				return
			}
		case st != nil && h.Type == wire.TypeEnd:
			st.peerEnd()
		default:
			c.cfg.Logger.Warn("arbor: unexpected frame on a call stream", "type", h.Type.String(), "id", id)
			ctx.cancel(context.Canceled)
			return
		}
	}
}
