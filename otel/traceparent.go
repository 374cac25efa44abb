package arborotel

import (
	"strings"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/arbor-rpc/arbor/wire"
)

// The metadata keys of W3C trace context: the HTTP header names in lower
// case, so that an HTTP bridge carries them as they are.
const (
	TraceparentKey = "traceparent"
	TracestateKey  = "tracestate"
)

// traceFlags are the flags W3C trace context defines (sampled, and the
// random trace id of level 2): the ones propagation.TraceContext keeps.
const traceFlags = trace.FlagsSampled | trace.FlagsRandom

// parseTraceparent reads a traceparent without allocating, as
// propagation.TraceContext does (a later version's extra fields are
// ignored).
func parseTraceparent(s string) (trace.SpanContextConfig, bool) {
	var c trace.SpanContextConfig
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return c, false
	}
	ver, ok := hexByte(s[0], s[1])
	if !ok || ver == 0xff || (ver == 0 && len(s) != 55) || (ver != 0 && len(s) > 55 && s[55] != '-') {
		return c, false
	}
	for i := range 16 {
		b, ok := hexByte(s[3+2*i], s[4+2*i])
		if !ok {
			return c, false
		}
		c.TraceID[i] = b
	}
	for i := range 8 {
		b, ok := hexByte(s[36+2*i], s[37+2*i])
		if !ok {
			return c, false
		}
		c.SpanID[i] = b
	}
	flags, ok := hexByte(s[53], s[54])
	if !ok || !c.TraceID.IsValid() || !c.SpanID.IsValid() || (ver == 0 && flags > 3) {
		return c, false // version 00 defines only the sampled and random flags
	}
	c.TraceFlags = trace.TraceFlags(flags) & traceFlags
	c.Remote = true
	return c, true
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := hexNibble(a)
	y, ok2 := hexNibble(b)
	return x<<4 | y, ok1 && ok2
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false // upper case is invalid in version 00
}

const hexDigits = "0123456789abcdef"

// formatTraceparent is the version-00 traceparent of sc.
func formatTraceparent(sc trace.SpanContext) string {
	var b [55]byte
	putTraceparent(&b, sc)
	return string(b[:])
}

// traceparentOnly is the metadata {traceparent: sc's} in one allocation:
// the pair and the header's bytes in one block, as wire parses small
// metadata. Nothing writes the bytes after, so the string is immutable.
func traceparentOnly(sc trace.SpanContext) []wire.MD {
	blk := new(struct {
		md [1]wire.MD
		b  [55]byte
	})
	putTraceparent(&blk.b, sc)
	blk.md[0] = wire.MD{Key: TraceparentKey, Value: unsafe.String(&blk.b[0], len(blk.b))}
	return blk.md[:1:1]
}

func putTraceparent(b *[55]byte, sc trace.SpanContext) {
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, x := range tid {
		b[3+2*i], b[4+2*i] = hexDigits[x>>4], hexDigits[x&15]
	}
	b[35] = '-'
	for i, x := range sid {
		b[36+2*i], b[37+2*i] = hexDigits[x>>4], hexDigits[x&15]
	}
	b[52] = '-'
	f := byte(sc.TraceFlags() & traceFlags)
	b[53], b[54] = hexDigits[f>>4], hexDigits[f&15]
}

// mdCache holds the metadata of calls under an unsampled span context:
// its traceparent. The last few are kept, so that the calls of one
// unsampled request (or a load test under one span) cost no allocation
// for it, and one that is not reused costs one.
type mdCache struct {
	slots [16]atomic.Pointer[mdEntry]
}

// mdEntry is one cached metadata, {traceparent}, with the header's bytes:
// one allocation. Nothing writes the bytes after, so the string is as
// immutable as any.
type mdEntry struct {
	sc   trace.SpanContext
	span trace.Span // the span whose context sc is (sameSpan), or nil
	md   [1]wire.MD
	buf  [55]byte
}

// entry returns the cached metadata of sc; span, when not nil, is the
// unsampled span whose context it is, kept in a new entry.
func (c *mdCache) entry(sc trace.SpanContext, span trace.Span) *mdEntry {
	s := &c.slots[(uint64(sc.SpanID()[7])^uint64(sc.TraceID()[15]))%uint64(len(c.slots))]
	if e := s.Load(); e != nil && e.sc.Equal(sc) {
		return e
	}
	e := &mdEntry{sc: sc, span: span}
	putTraceparent(&e.buf, sc)
	e.md[0] = wire.MD{Key: TraceparentKey, Value: unsafe.String(&e.buf[0], len(e.buf))}
	s.Store(e)
	return e
}

// sameSpan reports whether a and b are the same span: the same interface
// value, by its two words. A context hands out the interface value it
// was given, so every call under one span gets the same words; and while
// a holds its value alive no other can take its address. (== would
// compare the values, which panics for the SDK's non-recording span: its
// span context holds a slice.)
func sameSpan(a, b trace.Span) bool {
	if a == nil || b == nil {
		return false
	}
	return *(*[2]unsafe.Pointer)(unsafe.Pointer(&a)) == *(*[2]unsafe.Pointer)(unsafe.Pointer(&b))
}

// spanCache keeps the non-recording spans that stand for unsampled remote
// parents, by traceparent, so that carrying one into a handler costs only
// the context it is put in.
type spanCache struct {
	slots [16]atomic.Pointer[spanEntry]
}

// spanEntry is an unsampled remote parent: its traceparent (the cache's
// key, in the entry's own bytes when it fits) and the non-recording span
// that stands for it, which the entry is, so that one allocation makes
// both. It is what trace.ContextWithRemoteSpanContext would put in a
// context: every method of a span a no-op, SpanContext the parent's.
type spanEntry struct {
	noop.Span
	sc  trace.SpanContext
	tp  string
	buf [55]byte
}

// SpanContext is the remote parent's.
func (e *spanEntry) SpanContext() trace.SpanContext { return e.sc }

// slot picks tp's slot from the last digits of its parent id.
func (c *spanCache) slot(tp string) *atomic.Pointer[spanEntry] {
	h := 0
	if len(tp) >= 52 {
		h = int(tp[50]) ^ int(tp[51])<<1
	}
	return &c.slots[h%len(c.slots)]
}

// lookup returns the span cached for traceparent tp (an unsampled one).
func (c *spanCache) lookup(tp string) (trace.Span, bool) {
	if e := c.slot(tp).Load(); e != nil && e.tp == tp {
		return e, true
	}
	return nil, false
}

// span makes (and caches) the span standing for an unsampled remote
// parent tp, parsed as cfg.
func (c *spanCache) span(tp string, cfg trace.SpanContextConfig) trace.Span {
	cfg.Remote = true
	e := &spanEntry{sc: trace.NewSpanContext(cfg)}
	if len(tp) <= len(e.buf) {
		n := copy(e.buf[:], tp)
		e.tp = unsafe.String(&e.buf[0], n)
	} else {
		e.tp = strings.Clone(tp) // a later version's longer header
	}
	c.slot(tp).Store(e)
	return e
}
