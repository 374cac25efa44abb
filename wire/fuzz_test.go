package wire

import (
	"bytes"
	"reflect"
	"testing"
	"time"
)

// FuzzReader feeds arbitrary bytes to the frame reader and every payload
// decoder: none may panic, allocate more than a small multiple of the
// input (a header may announce a frame up to the limit and then stop), or
// accept a frame over the limit, and a CALL that parses must re-encode to
// the same payload.
func FuzzReader(f *testing.F) {
	var seed []byte
	seed = AppendHello(seed, Hello{Version: Version, MaxFrame: 1 << 16, KeepAlive: time.Second})
	seed, at := AppendCall(seed, &CallFrame{ID: 1, Timeout: time.Second, Function: "echo", Metadata: []MD{{Key: "a", Value: "b"}}})
	seed = append(seed, 0x91, 0xc4, 1, 'x')
	EndFrame(seed, at)
	f.Add(seed)
	path := AppendPath(nil, []PathSegment{{Key: "f"}, {Index: 2, IsIndex: true}})
	full, at := AppendCall(nil, &CallFrame{ID: 3, Retain: true, Stream: true, Function: "m",
		Target: &Target{Kind: TargetAnswer, ID: 1, Path: path}, Promises: []PromiseRef{{ID: 1, Path: path}},
		Caps: []CapDescriptor{{Kind: CapSenderHosted, ID: 4}, {Kind: CapReceiverAnswer, ID: 2, Path: path}}})
	full = append(full, 0x91, 0xd4, byte(PromiseExt), 0)
	EndFrame(full, at)
	f.Add(full)
	f.Add(AppendRelease(AppendRelease(nil, 1, 0), 2, 3))
	f.Add(AppendResult(nil, 3, []byte{0xc0}, []MD{{Key: "t", Value: "1"}}, []CapDescriptor{{Kind: CapReceiverHosted, ID: 2}}))
	f.Add(AppendError(nil, 2, ErrorPayload{Code: 3, Message: []byte("m")}))
	f.Add(AppendError(nil, 2, ErrorPayload{Code: 3, Message: []byte("m")}, MD{Key: "t", Value: "v"}))
	f.Add(AppendFrame(nil, TypeResult, FlagMetadata, 5, AppendMetadata(nil, []MD{{Key: "k", Value: "v"}})))
	f.Add(AppendGoAway(nil, GoAway{LastID: 1, Message: []byte("x")}))
	f.Add(AppendPing(nil, true, 1))
	f.Add(AppendCredit(nil, 3, 100))
	f.Add(AppendPad(AppendPing(nil, false, 2), 128))
	f.Add(AppendFrame(AppendFrame(nil, TypeData, 0, 3, []byte("msg")), TypeEnd, 0, 3, nil))
	f.Add(AppendFrame(nil, TypeCancel, 0, 4, nil))
	f.Add(AppendHeader(nil, Header{Length: 1 << 31, Type: TypeCall}))
	// A frame announced at the limit, of which a few bytes arrive.
	f.Add(append(AppendHeader(nil, Header{Length: fuzzLimit, Type: TypeResult, ID: 1}), "only this"...))
	f.Add(AppendFrame(nil, TypeResult, 0, 6, bytes.Repeat([]byte{'r'}, 3000)))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var failure string
		n := allocated(func() { failure = readAll(data) })
		if failure != "" {
			t.Fatal(failure)
		}
		if bound := allocBound(len(data)); n > bound {
			t.Fatalf("reading %d bytes allocated %d (bound %d)", len(data), n, bound)
		}
	})
}

// fuzzLimit is the frame limit FuzzReader reads with: the default, so
// that a header can announce much more than the input holds.
const fuzzLimit = DefaultMaxFrame

// readAll reads frames from data and decodes each payload, returning what
// went wrong, if anything, as a message.
func readAll(data []byte) string {
	r := NewReader(bytes.NewReader(data), 2048, fuzzLimit) // larger than SmallBuffer: the buffer grows and shrinks
	for i := 0; i < 64; i++ {
		h, p, err := r.Next()
		if err != nil {
			return ""
		}
		if len(p) != int(h.Length) || h.Length > fuzzLimit {
			return "payload size disagrees with the header"
		}
		if h.Flags&FlagMetadata != 0 && h.Type == TypeError { // RESULT: ParseResult reads its own
			block, rest, err := SplitMetadata(h.Type, p)
			if err == nil {
				if _, err := ParseMetadata(nil, block); err != nil {
					return "SplitMetadata accepted a block that ParseMetadata refuses: " + err.Error()
				}
				p = rest
			}
		}
		switch h.Type {
		case TypeHello:
			ParseHello(p)
		case TypeCall:
			c, err := ParseCall(h.Flags, p)
			if err != nil {
				continue
			}
			q := append([]byte(nil), p...)
			moved, _ := ParseCall(h.Flags, q)
			rebased := c
			rebased.Rebase(p, q)
			if !reflect.DeepEqual(rebased, moved) || (len(rebased.Args) > 0 && &rebased.Args[0] != &q[len(q)-len(rebased.Args)]) {
				return "Rebase disagrees with parsing the copy"
			}
			md, err := ParseMetadata(nil, c.Metadata)
			if err != nil {
				return "ParseCall accepted metadata that ParseMetadata refuses: " + err.Error()
			}
			ps, err := ParsePromises(nil, c.Promises)
			if err != nil {
				return "ParseCall accepted a promise table that ParsePromises refuses: " + err.Error()
			}
			for _, pr := range ps {
				if _, err := ParsePath(pr.Path); err != nil {
					return "ParseCall accepted a path that ParsePath refuses: " + err.Error()
				}
			}
			caps, err := ParseCapTable(nil, c.Caps)
			if err != nil {
				return "ParseCall accepted a capability table that ParseCapTable refuses: " + err.Error()
			}
			f := &CallFrame{ID: h.ID, Stream: h.Flags&FlagStream != 0, Retain: h.Flags&FlagRetain != 0,
				Timeout: c.Timeout, Function: string(c.Function), Metadata: md, Promises: ps, Caps: caps}
			if c.HasTarget {
				f.Target = &c.Target
			}
			b, at := AppendCall(nil, f)
			b = append(b, c.Args...)
			EndFrame(b, at)
			c2, err := ParseCall(b[5], b[HeaderSize:])
			if err != nil || string(c2.Function) != string(c.Function) || !bytes.Equal(c2.Args, c.Args) || c2.Timeout != c.Timeout ||
				c2.HasTarget != c.HasTarget || !bytes.Equal(c2.Target.Path, c.Target.Path) || c2.Target.ID != c.Target.ID {
				return "call does not round-trip"
			}
		case TypeResult:
			if r, err := ParseResult(h.Flags, p); err == nil {
				if _, err := ParseCapTable(nil, r.Caps); err != nil {
					return "ParseResult accepted a capability table that ParseCapTable refuses: " + err.Error()
				}
			}
		case TypeError:
			ParseError(p)
		case TypeGoAway:
			ParseGoAway(p)
		case TypePing, TypePong:
			ParsePing(h.Type, p)
		case TypeCredit:
			ParseCredit(p)
		case TypeRelease:
			ParseRelease(p)
		case TypePad:
			CheckPad(p)
		}
	}
	return ""
}
