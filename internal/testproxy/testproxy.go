// Package testproxy is a TCP proxy for tests that holds every chunk for a
// fixed delay in each direction (a slow link on loopback, since this
// machine's kernel has no netem) and counts round trips: how often the
// server answered after the client had sent. It is not a general proxy.
package testproxy

import (
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// Proxy is a running delay proxy.
type Proxy struct {
	// URL is the proxy's tcp:// address.
	URL string
	// turns counts changes of direction from client→server to
	// server→client: round trips, whatever the timing. Frames the server
	// answers nothing to (RELEASE, CREDIT, CANCEL, PAD: the client's
	// bookkeeping, sent as it goes) do not count as the client sending.
	turns   atomic.Int64
	lastDir atomic.Int32 // 1: the client sent last, 2: the server did
}

// frameScan follows the frames of the client's byte stream across chunks.
type frameScan struct {
	hdr  [wire.HeaderSize]byte
	have int    // bytes of hdr read
	skip uint32 // payload bytes of the current frame still to come
}

// asks reports whether chunk b holds (the start of) a frame the server
// may answer.
func (f *frameScan) asks(b []byte) bool {
	asks := false
	for len(b) > 0 {
		if f.skip > 0 {
			n := min(uint32(len(b)), f.skip)
			f.skip -= n
			b = b[n:]
			continue
		}
		n := copy(f.hdr[f.have:], b)
		f.have += n
		b = b[n:]
		if f.have < wire.HeaderSize {
			break
		}
		f.have = 0
		h, _ := wire.ParseHeader(f.hdr[:], math.MaxUint32) // a malformed one asks: the server answers it
		f.skip = h.Length
		switch h.Type {
		case wire.TypeRelease, wire.TypeCredit, wire.TypeCancel, wire.TypePad:
		default:
			asks = true
		}
	}
	return asks
}

// RoundTrips is the number of round trips the proxy has carried: each
// time data went back to the client after data had come from it.
func (p *Proxy) RoundTrips() int64 { return p.turns.Load() }

// Delay forwards TCP between a client and target (host:port), holding
// every chunk for d in each direction: a link with a round trip of 2d. It
// returns the proxy's tcp:// address; the test's cleanup stops it.
func Delay(t testing.TB, target string, d time.Duration) string { return Start(t, target, d).URL }

// Start is Delay returning the Proxy, to count its round trips.
func Start(t testing.TB, target string, d time.Duration) *Proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: "tcp://" + l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			pipe := func(dst, src net.Conn, dir int32) {
				defer wg.Done()
				defer dst.Close()
				type chunk struct {
					at time.Time
					b  []byte
				}
				q := make(chan chunk, 1024)
				go func() {
					defer close(q)
					for {
						buf := make([]byte, 64<<10)
						n, err := src.Read(buf)
						if n > 0 {
							q <- chunk{time.Now().Add(d), buf[:n]}
						}
						if err != nil {
							return
						}
					}
				}()
				var scan frameScan // client→server only
				for c := range q {
					time.Sleep(time.Until(c.at))
					switch {
					case dir == 1:
						if scan.asks(c.b) {
							p.lastDir.Store(1)
						}
					case p.lastDir.Swap(2) == 1:
						p.turns.Add(1)
					}
					if _, err := dst.Write(c.b); err != nil {
						io.Copy(io.Discard, src)
						return
					}
				}
			}
			wg.Add(2)
			go pipe(out, in, 1)
			go pipe(in, out, 2)
		}
	}()
	return p
}
