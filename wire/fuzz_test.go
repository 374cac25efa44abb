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
	seed, at := BeginCall(seed, 1, time.Second, "echo", []MD{{Key: "a", Value: "b"}})
	seed = append(seed, 0x91, 0xc4, 1, 'x')
	EndFrame(seed, at)
	f.Add(seed)
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
				c, err := ParseCall(p)
				if err != nil {
					continue
				}
				md, err := ParseMetadata(nil, c.Metadata)
				if err != nil {
					t.Fatalf("ParseCall accepted metadata that ParseMetadata refuses: %v", err)
				}
				b, at := BeginCall(nil, h.ID, c.Timeout, string(c.Function), md)
				b = append(b, c.Args...)
				EndFrame(b, at)
				c2, err := ParseCall(b[HeaderSize:])
				if err != nil || string(c2.Function) != string(c.Function) || !bytes.Equal(c2.Args, c.Args) || c2.Timeout != c.Timeout {
					t.Fatalf("call does not round-trip: %+v vs %+v (%v)", c, c2, err)
				}
			case TypeError:
				ParseError(p)
			case TypeGoAway:
				ParseGoAway(p)
			case TypePing, TypePong:
				ParsePing(h.Type, p)
			case TypeCredit:
				ParseCredit(p)
			}
		}
	})
}
