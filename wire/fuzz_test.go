package wire

import (
	"bytes"
	"testing"
	"time"
)

// FuzzReader feeds arbitrary bytes to the frame reader and every payload
// decoder: none may panic, allocate past the limit, or accept a frame over
// it, and a CALL that parses must re-encode to the same payload.
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
		Caps: []CapDescriptor{{Kind: CapSenderHosted, ID: 4}}})
	full = append(full, 0x91, 0xd4, byte(PromiseExt), 0)
	EndFrame(full, at)
	f.Add(full)
	f.Add(AppendRelease(AppendRelease(nil, 1, 0), 2, 3))
	f.Add(AppendResult(nil, 3, []byte{0xc0}, []MD{{Key: "t", Value: "1"}}, []CapDescriptor{{Kind: CapReceiverHosted, ID: 2}}))
	f.Add(AppendError(nil, 2, ErrorPayload{Code: 3, Message: []byte("m")}))
	f.Add(AppendGoAway(nil, GoAway{LastID: 1, Message: []byte("x")}))
	f.Add(AppendPing(nil, true, 1))
	f.Add(AppendCredit(nil, 3, 100))
	f.Add(AppendFrame(AppendFrame(nil, TypeData, 0, 3, []byte("msg")), TypeEnd, 0, 3, nil))
	f.Add(AppendFrame(nil, TypeCancel, 0, 4, nil))
	f.Add(AppendHeader(nil, Header{Length: 1 << 31, Type: TypeCall}))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 512, limit)
		for i := 0; i < 64; i++ {
			h, p, err := r.Next()
			if err != nil {
				return
			}
			if len(p) != int(h.Length) || h.Length > limit {
				t.Fatalf("payload %d bytes for length %d", len(p), h.Length)
			}
			switch h.Type {
			case TypeHello:
				ParseHello(p)
			case TypeCall:
				c, err := ParseCall(h.Flags, p)
				if err != nil {
					continue
				}
				md, err := ParseMetadata(nil, c.Metadata)
				if err != nil {
					t.Fatalf("ParseCall accepted metadata that ParseMetadata refuses: %v", err)
				}
				ps, err := ParsePromises(nil, c.Promises)
				if err != nil {
					t.Fatalf("ParseCall accepted a promise table that ParsePromises refuses: %v", err)
				}
				for _, pr := range ps {
					if _, err := ParsePath(pr.Path); err != nil {
						t.Fatalf("ParseCall accepted a path that ParsePath refuses: %v", err)
					}
				}
				caps, err := ParseCapTable(nil, c.Caps)
				if err != nil {
					t.Fatalf("ParseCall accepted a capability table that ParseCapTable refuses: %v", err)
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
					t.Fatalf("call does not round-trip: %+v vs %+v (%v)", c, c2, err)
				}
			case TypeResult:
				if r, err := ParseResult(h.Flags, p); err == nil {
					if _, err := ParseMetadata(nil, r.Trailer); err != nil && len(r.Trailer) > 0 {
						t.Fatalf("ParseResult accepted trailers that ParseMetadata refuses: %v", err)
					}
					if _, err := ParseCapTable(nil, r.Caps); err != nil {
						t.Fatalf("ParseResult accepted a capability table that ParseCapTable refuses: %v", err)
					}
				}
			case TypeError:
				ParseError(p)
			case TypeGoAway:
				ParseGoAway(p)
			case TypePing, TypePong:
				ParsePing(h.Type, p)
			case TypeCredit, TypeRelease:
				ParseCredit(p)
			}
		}
	})
}
