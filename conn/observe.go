package conn

import (
	"context"
	"reflect"
	"time"
	"unsafe"

	"github.com/arbor-rpc/arbor/wire"
)

// Observer sees a connection's life and every call on it, both ways: the
// hook that metrics and tracing are built on (grpc-go's stats handler, in
// Arbor's terms). Config.Observer is nil by default, and a nil Observer
// costs one pointer check per event.
//
// Methods run on the connection's and the callers' goroutines, so they
// must be fast and must never block. The *CallInfo passed to them, and
// the strings and slices in it, are valid only during the call of the
// method (copy what you keep: strings.Clone).
type Observer interface {
	// ConnOpened is called once a connection has finished its handshake,
	// ConnClosed once when it has closed (err says why).
	ConnOpened(c *Conn)
	ConnClosed(c *Conn, err error)
	// CallStarted is called as a call starts: an outgoing one (this side
	// calls) before its CALL frame is queued, an incoming one before its
	// handler runs. The context it returns becomes the call's: the
	// handler's context on the serving side, the one CallEnded gets on
	// both. For an outgoing call it may add metadata (trace context) by
	// replacing info.Metadata with a new slice; it must not modify the
	// slice it was given.
	CallStarted(ctx context.Context, info *CallInfo) context.Context
	// CallEnded is called once for every started call when it is over:
	// the answer arrived or was abandoned (outgoing), the handler returned
	// (incoming), the stream ended. err is nil on success.
	CallEnded(ctx context.Context, info *CallInfo, err error)
	// FlowStalled is called when a stream sender had to wait d for
	// flow-control credit (the peer reads more slowly than it is sent to).
	FlowStalled(c *Conn, d time.Duration)
	// GoAway is called for a GOAWAY frame this side sent (sent) or
	// received: the connection is going away, calls above its last id are
	// refused.
	GoAway(c *Conn, sent bool, code uint32, message string)
}

// CallKind is the shape of an observed call.
type CallKind uint8

// The kinds of calls an Observer sees.
const (
	CallUnary  CallKind = iota // a call and its answer
	CallAsync                  // an outgoing call whose answer is awaited later (a promise)
	CallStream                 // a streaming call
)

var callKindNames = [...]string{"unary", "async", "stream"}

// String names the kind: unary, async or stream.
func (k CallKind) String() string {
	if int(k) < len(callKindNames) {
		return callKindNames[k]
	}
	return "unknown"
}

// CallInfo describes one call to an Observer.
type CallInfo struct {
	Conn *Conn
	// Outgoing is set when this side made the call.
	Outgoing bool
	Kind     CallKind
	// Function is the function id, or the method name when Method is
	// set (the call is addressed to a capability). Valid only during the
	// Observer's method: it may point into a reused buffer.
	Function string
	Method   bool
	// Metadata is the call's metadata: outgoing (CallStarted may replace
	// it, see there) or incoming.
	Metadata []wire.MD
	// Start is when the call started (an outgoing one: when it was made;
	// an incoming one: when its frame arrived, so that the time it waited
	// to be served counts), read from the monotonic clock: measure with
	// Elapsed at CallEnded. (Its wall reading is the process
	// start's plus the time since, which a step of the wall clock does
	// not move: see clock.go.)
	Start time.Time
	// ArgBytes and ResultBytes are the encoded arguments and result (for
	// a stream, with the messages sent and received, at CallEnded).
	ArgBytes, ResultBytes int64

	elapsed time.Duration // Elapsed, when the connection timed the call itself

	cc   *callCtx     // an incoming call's handler context (WithValue)
	kept [maxKept]any // Keep's values, one per observer
	slot uint8        // the observer being called: its index in Observers
}

// Elapsed is, at CallEnded, how long the call took: for an answered
// outgoing call, until the socket read that brought its answer (the
// connection reads the clock once per read, not per call); for a served
// call the connection timed anyway (one that may run inline), what it
// measured; else time.Since(Start). Use it rather than reading the clock
// again.
func (info *CallInfo) Elapsed() time.Duration {
	if info.elapsed > 0 {
		return info.elapsed
	}
	return time.Since(info.Start)
}

// maxKept is how many observers combined by Observers can Keep a value.
const maxKept = 4

// Keep stores v for the observer being called until the call's
// CallEnded, where Kept returns it: what CallStarted found (metrics: the
// function's counters) need not be looked up again at the end. Each
// observer combined by Observers has its own; past the fourth, Keep
// does nothing and Kept returns nil, so an observer must handle nil. An
// observer that wraps a combination of its own (not through Observers)
// shares its slot with the first one in it: check that what Kept
// returns is yours.
func (info *CallInfo) Keep(v any) {
	if info.slot < maxKept {
		info.kept[info.slot] = v
	}
}

// Kept returns what the observer being called stored with Keep, or nil.
func (info *CallInfo) Kept() any {
	if info.slot < maxKept {
		return info.kept[info.slot]
	}
	return nil
}

// WithValue returns ctx with key bound to val, as context.WithValue does
// (key must be comparable, and should be of an unexported type). In
// CallStarted of an incoming call, when ctx is still the connection's
// own context of the call, the value is kept in that context and ctx is
// returned as it is: binding a span to every handler's context then costs
// no allocation. Each call has one such slot; anything else gets
// context.WithValue.
func (info *CallInfo) WithValue(ctx context.Context, key, val any) context.Context {
	if cc := info.cc; cc != nil && cc.obKey == nil && ctx == context.Context(cc) && key != nil && reflect.TypeOf(key).Comparable() {
		cc.obKey, cc.obVal = key, val // before the handler runs: CallStarted precedes it
		return ctx
	}
	return context.WithValue(ctx, key, val)
}

// Observers combines observers into one that calls each in turn (nil
// entries are skipped); CallStarted passes the context each returns to
// the next.
func Observers(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		switch o := o.(type) {
		case nil:
		case multiObserver: // flat: each observer has its own Keep slot
			list = append(list, o...)
		default:
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) ConnOpened(c *Conn) {
	for _, o := range m {
		o.ConnOpened(c)
	}
}

func (m multiObserver) ConnClosed(c *Conn, err error) {
	for _, o := range m {
		o.ConnClosed(c, err)
	}
}

func (m multiObserver) CallStarted(ctx context.Context, info *CallInfo) context.Context {
	for i, o := range m {
		info.slot = uint8(min(i, maxKept))
		ctx = o.CallStarted(ctx, info)
	}
	info.slot = 0
	return ctx
}

func (m multiObserver) CallEnded(ctx context.Context, info *CallInfo, err error) {
	for i := len(m) - 1; i >= 0; i-- { // innermost first, as interceptors unwind
		info.slot = uint8(min(i, maxKept))
		m[i].CallEnded(ctx, info, err)
	}
	info.slot = 0
}

func (m multiObserver) FlowStalled(c *Conn, d time.Duration) {
	for _, o := range m {
		o.FlowStalled(c, d)
	}
}

func (m multiObserver) GoAway(c *Conn, sent bool, code uint32, message string) {
	for _, o := range m {
		o.GoAway(c, sent, code, message)
	}
}

// IsClient reports whether this is the client end of the connection (the
// side that dialed).
func (c *Conn) IsClient() bool { return c.client }

// observed is the Observer's state of one call: kept in the pooled
// structures of the call (serverCall, call, Stream), so observing costs
// no allocation of its own.
type observed struct {
	info CallInfo
	ctx  context.Context
}

// startOutgoing begins observing an outgoing call; o's metadata may be
// replaced by the observer's. It returns the context for the call.
func (c *Conn) startOutgoing(ctx context.Context, ob *observed, kind CallKind, o *Outgoing) context.Context {
	ob.info = CallInfo{Conn: c, Outgoing: true, Kind: kind, Function: o.Function, Method: o.Target != nil,
		Metadata: o.Metadata, Start: now(), ArgBytes: int64(len(o.Args) + len(o.ArgsTail))}
	ob.ctx = c.cfg.Observer.CallStarted(ctx, &ob.info)
	o.Metadata = ob.info.Metadata
	return ob.ctx
}

// end reports the end of an observed call and forgets it.
func (ob *observed) end(obs Observer, resultBytes int, err error) {
	ob.info.ResultBytes += int64(resultBytes)
	obs.CallEnded(ob.ctx, &ob.info, err)
	*ob = observed{}
}

// observedCall is Call with Config.Observer watching; the observer's
// state lives in the pooled call, so observing allocates nothing.
func (c *Conn) observedCall(ctx context.Context, o *Outgoing) (*Reply, error) {
	cl := getCall()
	oc := *o // the observer may add metadata; the caller's Outgoing stays as it was
	c.startOutgoing(ctx, &cl.obs, CallUnary, &oc)
	err := c.await(ctx, &oc, cl)
	o.Sent = oc.Sent
	n := 0
	if err == nil {
		n = len(cl.buf)
	}
	cl.obs.end(c.cfg.Observer, n, err)
	return c.reply(cl, err)
}

// startIncoming begins observing an incoming call and returns the
// handler's context; began is when the connection began timing the call
// (zero: it does not). The call started when its frame arrived.
func (c *Conn) startIncoming(sc *serverCall, began time.Time) context.Context {
	start := sc.arrived
	if start.IsZero() {
		start = began
	}
	kind := CallUnary
	if sc.in.Stream != nil {
		kind = CallStream
	}
	fn := ""
	if len(sc.in.Function) > 0 { // points into sc.buf, valid until the call ends
		fn = unsafe.String(&sc.in.Function[0], len(sc.in.Function))
	}
	sc.ob.info = CallInfo{Conn: c, Kind: kind, Function: fn, Method: sc.in.HasTarget,
		Metadata: sc.in.Metadata, Start: start, ArgBytes: int64(len(sc.in.Args)), cc: sc.ctx}
	if start.IsZero() {
		sc.ob.info.Start = now()
	}
	sc.ob.ctx = c.cfg.Observer.CallStarted(sc.ctx, &sc.ob.info)
	return sc.ob.ctx
}

// endIncoming reports the end of an observed incoming call.
func (c *Conn) endIncoming(sc *serverCall, n int, err error) {
	if st := sc.in.Stream; st != nil {
		sc.ob.info.ArgBytes += st.recvBytes.Load()
		n += int(st.sentBytes.Load())
	}
	sc.ob.end(c.cfg.Observer, n, err)
}

// observeEnd reports the end of an observed stream this side opened.
func (s *Stream) observeEnd(result []byte, err error) {
	ob := s.ob
	ob.info.ArgBytes += s.sentBytes.Load()
	ob.end(s.c.cfg.Observer, len(result)+int(s.recvBytes.Load()), err)
}

// countSent and countRecv add a stream message to the observed bytes.
func (s *Stream) countSent(n int) {
	if s.c.cfg.Observer != nil {
		s.sentBytes.Add(int64(n))
	}
}

func (s *Stream) countRecv(n int) {
	if s.c.cfg.Observer != nil {
		s.recvBytes.Add(int64(n))
	}
}

// observeGoAway reports a GOAWAY sent or received.
func (c *Conn) observeGoAway(sent bool, code uint32, msg []byte) {
	if obs := c.cfg.Observer; obs != nil {
		obs.GoAway(c, sent, code, string(msg))
	}
}
