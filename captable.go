package arbor

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"reflect"
	"sync"

	"github.com/arbor-rpc/arbor/conn"
	"github.com/arbor-rpc/arbor/internal/typecache"
	"github.com/arbor-rpc/arbor/value"
	"github.com/arbor-rpc/arbor/wire"
)

// Capabilities travel as Cap'n Proto's do: a value holds an index into
// its message's capability table (a wire.CapabilityExt), and the frame
// carries the table, whose entries say whose export each one is. Encoding
// a value collects the capabilities in it (capEncoder) without knowing the
// connection yet, so arguments can be encoded before a Caller has chosen
// where the call goes; the table is made for the connection at send time.

// capEncoder collects the capabilities a value holds while it is encoded.
type capEncoder struct {
	entries []capEntry
}

type capEntry struct {
	svc *Service
	ref *Ref
}

// add records a capability and returns its index in the table.
func (e *capEncoder) add(c capEntry) uint64 {
	for i, x := range e.entries {
		if x == c {
			return uint64(i)
		}
	}
	e.entries = append(e.entries, c)
	return uint64(len(e.entries) - 1)
}

// resolve makes the table for connection cc: services are exported there;
// a reference to an export of cc's peer is passed back as the peer's own;
// any other reference is re-exported through a proxy that forwards to it.
// On error, what it exported is released again.
func (e *capEncoder) resolve(cc *conn.Conn) ([]wire.CapDescriptor, error) {
	if len(e.entries) == 0 {
		return nil, nil
	}
	if len(e.entries) > wire.MaxCaps {
		return nil, Errorf(ResourceExhausted, "a message holds %d capabilities, over the limit of %d", len(e.entries), wire.MaxCaps)
	}
	out := make([]wire.CapDescriptor, 0, len(e.entries))
	undo := func() {
		for _, d := range out {
			if d.Kind == wire.CapSenderHosted {
				releaseExport(cc, d.ID, 1)
			}
		}
	}
	for _, en := range e.entries {
		svc := en.svc
		if r := en.ref; r != nil {
			if err := r.usable(""); err != nil {
				undo()
				return nil, err
			}
			switch {
			case r.local != nil:
				svc = r.local
			case r.cc == cc && r.target.Kind == wire.TargetExport:
				out = append(out, wire.CapDescriptor{Kind: wire.CapReceiverHosted, ID: r.target.ID})
				continue
			case r.cc == cc: // a promised capability, back to the side that will return it
				out = append(out, wire.CapDescriptor{Kind: wire.CapReceiverAnswer, ID: r.target.ID, Path: r.target.Path})
				continue
			default:
				id, err := exportProxy(cc, r)
				if err != nil {
					undo()
					return nil, err
				}
				out = append(out, wire.CapDescriptor{Kind: wire.CapSenderHosted, ID: id})
				continue
			}
		}
		id, err := exportOn(cc, svc)
		if err != nil {
			undo()
			return nil, err
		}
		out = append(out, wire.CapDescriptor{Kind: wire.CapSenderHosted, ID: id})
	}
	return out, nil
}

// capDecoder turns the capability table of a received message into Refs.
// For an in-process call (a capability passed back to its exporter) the
// table is made of Refs already: local.
type capDecoder struct {
	cc    *conn.Conn
	table []wire.CapDescriptor
	owner *Client // the client whose interceptors the Refs use, if any
	refs  []*Ref  // made so far, by index (local: all of them)
	local bool
	taken []bool // local: which refs a value took
	mu    sync.Mutex
}

// localDecoder returns a decoder of in-process capabilities.
func localDecoder(refs []*Ref) *capDecoder {
	return &capDecoder{refs: refs, local: true, taken: make([]bool, len(refs))}
}

// ref returns the reference that entry i names, made once per entry.
func (d *capDecoder) ref(i uint64) (*Ref, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.local {
		if i >= uint64(len(d.refs)) {
			return nil, fmt.Errorf("capability index %d out of range: the message holds %d", i, len(d.refs))
		}
		d.taken[i] = true
		return d.refs[i], nil
	}
	if i >= uint64(len(d.table)) {
		return nil, fmt.Errorf("capability index %d out of range: the message holds %d", i, len(d.table))
	}
	if d.refs == nil {
		d.refs = make([]*Ref, len(d.table))
	}
	if r := d.refs[i]; r != nil {
		return r, nil
	}
	e := d.table[i]
	var r *Ref
	switch e.Kind {
	case wire.CapSenderHosted:
		r = newImport(d.cc, e.ID, d.owner, loggerOf(d.owner))
	case wire.CapReceiverHosted: // one of ours, passed back: the object itself
		svc := exportedService(d.cc, e.ID)
		if svc == nil {
			return nil, fmt.Errorf("capability %d is not an export of this side of the connection", e.ID)
		}
		r = localRef(svc)
	default:
		return nil, fmt.Errorf("capability %d has unknown kind %d", i, e.Kind)
	}
	d.refs[i] = r
	return r, nil
}

// all returns every reference of the table (a proxy passes them all on).
func (d *capDecoder) all() ([]*Ref, error) {
	n := len(d.table)
	if d.local {
		n = len(d.refs)
	}
	out := make([]*Ref, n)
	for i := range out {
		r, err := d.ref(uint64(i))
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// releaseUnused releases the peer's exports in the table that no value
// took: the peer counted a reference for each.
func (d *capDecoder) releaseUnused() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.local {
		for i, r := range d.refs {
			if !d.taken[i] {
				r.Close()
			}
		}
		d.refs = nil
		return
	}
	for i, e := range d.table {
		if e.Kind == wire.CapSenderHosted && (d.refs == nil || d.refs[i] == nil) {
			d.cc.ReleaseExport(e.ID, 1)
		}
	}
	d.table = nil
}

// releaseAll releases every capability of the table, the references
// made of it so far included: a call that fails before its handler runs
// hands none of them over.
func (d *capDecoder) releaseAll() {
	d.mu.Lock()
	var made []*Ref
	if d.local {
		clear(d.taken)
	} else {
		made = d.refs
	}
	d.mu.Unlock()
	for _, r := range made {
		if r != nil {
			r.Close()
		}
	}
	d.releaseUnused()
}

// takeCaps hands the capability table of an incoming call to the caller,
// which releases what no value takes; the dispatcher releases a table
// nobody took when the call ends (ServeCall).
func takeCaps(in *conn.Incoming) []wire.CapDescriptor {
	caps := in.Caps
	in.Caps = caps[:0]
	if len(caps) > 0 {
		in.CapsTaken = true
	}
	return caps
}

// capsRerun is the error of a call's handler run again (an interceptor
// calling next twice) after an earlier run took the call's capabilities:
// they are handed over once, and the earlier run may have closed them.
func capsRerun(id string) error {
	return Errorf(Internal, "%s: its arguments' capabilities went to an earlier run of its handler; an interceptor that calls next twice cannot pass them again", id)
}

// releaseCaps takes the capability table of an incoming call and
// releases all of it: nothing of the call will hold its capabilities.
func releaseCaps(in *conn.Incoming) {
	(&capDecoder{cc: in.Conn, table: takeCaps(in)}).releaseUnused()
}

// closeRefs closes the references among the capabilities collected: a
// result hands its references over (Cap'n Proto: results own their
// capabilities), so the handler that returned them has no more to do.
func (e *capEncoder) closeRefs() {
	for _, en := range e.entries {
		if en.ref != nil {
			en.ref.Close()
		}
	}
}

// transfer turns a result's capabilities into the references an
// in-process caller receives: its services as local references, its
// references handed over as they are.
func (e *capEncoder) transfer() []*Ref {
	if len(e.entries) == 0 {
		return nil
	}
	out := make([]*Ref, len(e.entries))
	for i, en := range e.entries {
		if en.svc != nil {
			out[i] = localRef(en.svc)
		} else {
			out[i] = en.ref
		}
	}
	return out
}

// handles turns the capabilities an encoder collected into references for
// an in-process receiver: each is its own handle, closed by the receiver.
func (e *capEncoder) handles() []*Ref {
	if e == nil || len(e.entries) == 0 {
		return nil
	}
	out := make([]*Ref, len(e.entries))
	for i, en := range e.entries {
		switch {
		case en.svc != nil:
			out[i] = localRef(en.svc)
		case en.ref.local != nil:
			out[i] = localRef(en.ref.local)
		default:
			out[i] = en.ref.dup()
		}
	}
	return out
}

func loggerOf(c *Client) *slog.Logger {
	if c == nil {
		return discardLogger
	}
	return c.logger
}

var discardLogger = slog.New(slog.DiscardHandler)

// ---- encoding and decoding as values ----

// AppendMsgpack encodes the reference as an entry of the message's
// capability table (value.Marshaler).
func (r *Ref) AppendMsgpack(b []byte, host any) ([]byte, error) {
	e, ok := host.(*capEncoder)
	if !ok || e == nil {
		return b, fmt.Errorf("a *arbor.Ref can only be sent as (part of) an argument or result of a call")
	}
	if err := r.usable(""); err != nil {
		return b, err
	}
	return value.AppendExt(b, wire.CapabilityExt, binary.AppendUvarint(nil, e.add(capEntry{ref: r}))), nil
}

// ResolveMsgpack decodes a reference from the message's capability
// table (value.Resolver): the same entry always gives the same *Ref.
func (*Ref) ResolveMsgpack(rd *value.Reader, host any) (any, error) {
	d, ok := host.(*capDecoder)
	t, data, err := rd.ReadExt()
	if err != nil {
		return nil, err
	}
	if t != wire.CapabilityExt {
		return nil, fmt.Errorf("expected a capability, got extension type %d", t)
	}
	i, n := binary.Uvarint(data)
	if n <= 0 || n != len(data) {
		return nil, fmt.Errorf("malformed capability index")
	}
	if !ok || d == nil {
		return nil, fmt.Errorf("capability index %d out of range: the message holds none", i)
	}
	return d.ref(i)
}

// AppendMsgpack encodes the service as an entry of the message's
// capability table: the peer receives a *Ref to it (value.Marshaler).
func (s *Service) AppendMsgpack(b []byte, host any) ([]byte, error) {
	e, ok := host.(*capEncoder)
	if !ok || e == nil {
		return b, fmt.Errorf("a *arbor.Service can only be sent as (part of) an argument or result of a call")
	}
	return value.AppendExt(b, wire.CapabilityExt, binary.AppendUvarint(nil, e.add(capEntry{svc: s}))), nil
}

// ReadMsgpack refuses: a service is received as a *Ref.
func (s *Service) ReadMsgpack(rd *value.Reader, host any) error {
	return fmt.Errorf("a capability is received as *arbor.Ref, not *arbor.Service")
}

// capTypes caches, per type, whether its values may hold capabilities.
var capTypes typeFlags

type typeFlags struct{ c typecache.Cache[bool] }

func (f *typeFlags) has(t reflect.Type) bool { return f.c.Get(t, hasCaps) }
