package conn

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/arbor-rpc/arbor/wire"
)

// slowReader reads at most chunk bytes at a time, pausing before each read:
// a peer that drains its socket slowly.
type slowReader struct {
	r     net.Conn
	chunk int
	pause time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	return s.r.Read(p)
}

// fill writes a pattern that differs per call i and per offset.
func fill(b []byte, i int) {
	for j := range b {
		b[j] = byte(i*31 + j*7 + j>>9)
	}
}

// Many large calls, some cancelled mid-write, through a slow reader: every
// frame the peer parses is whole and holds the bytes sent.
func TestCutWriteStress(t *testing.T) {
	for _, sp := range cutPeers {
		t.Run(sp.name, func(t *testing.T) { testCutWriteStress(t, sp.peer) })
	}
}

// cutPeers are the transports whose large writes a cut stops at once
// (over tls://, the transport's: a Cutter).
var cutPeers = []struct {
	name string
	peer func(*testing.T, Config) (*Conn, net.Conn)
}{{"tcp", writeStuckPeer}, {"tls", tlsStuckPeer}, {"quic", func(t *testing.T, cfg Config) (*Conn, net.Conn) { return secureStuckPeer(t, "quic", cfg) }}}

func testCutWriteStress(t *testing.T, stuckPeer func(*testing.T, Config) (*Conn, net.Conn)) {
	for round := 0; round < 4; round++ {
		cc, pc := stuckPeer(t, Config{})
		const n = 24
		type sent struct{ head, tail []byte }
		want := make([]sent, n)
		for i := range want {
			want[i].tail = make([]byte, 300<<10+i*4099+round*17)
			fill(want[i].tail, i)
			if i%3 != 0 {
				want[i].head = make([]byte, 1+i%5)
				fill(want[i].head, i+100)
			}
		}
		var wg sync.WaitGroup
		rc := make(chan error, 1)
		recv := make([]bool, n)
		var mu sync.Mutex
		sentOK := make([]bool, n)
		for i := range sentOK {
			sentOK[i] = true
		}
		var cwg sync.WaitGroup
		readAll := func() error {
			r := wire.NewReader(slowReader{pc, 16 << 10, time.Millisecond}, 64<<10, 64<<20)
			got := 0
			for got < n {
				pc.SetReadDeadline(time.Now().Add(3 * time.Second))
				h, p, err := r.Next()
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					return nil
				}
				if err != nil {
					return fmt.Errorf("round %d: peer read after %d calls: %v", round, got, err)
				}
				if h.Type != wire.TypeCall {
					continue
				}
				c, err := wire.ParseCall(h.Flags, p)
				if err != nil {
					return fmt.Errorf("round %d: call %d: %v", round, got, err)
				}
				var i int
				if _, err := fmt.Sscanf(string(c.Function), "f%d", &i); err != nil {
					return fmt.Errorf("round %d: function %q", round, c.Function)
				}
				w := append(append([]byte(nil), want[i].head...), want[i].tail...)
				if string(c.Args) != string(w) {
					k := 0
					for k < len(w) && k < len(c.Args) && w[k] == c.Args[k] {
						k++
					}
					return fmt.Errorf("round %d: call f%d: %d bytes of args, want %d; first difference at %d", round, i, len(c.Args), len(w), k)
				}
				got++
				recv[i] = true
			}
			return nil
		}
		for i := 0; i < n; i++ {
			head := make([]byte, len(want[i].head))
			tail := append([]byte(nil), want[i].tail...)
			copy(head, want[i].head)
			o := &Outgoing{Function: fmt.Sprintf("f%d", i)}
			if i%3 == 0 {
				o.Args = tail
			} else {
				o.Args, o.ArgsTail = head, tail
			}
			var ctx context.Context
			var cancel context.CancelFunc
			switch i % 4 {
			case 0, 1:
				ctx, cancel = context.WithTimeout(context.Background(), time.Duration(5+(i*37+round*11)%300)*time.Millisecond)
			case 2:
				ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
			default:
				ctx, cancel = context.Background(), func() {}
			}
			wg.Add(1)
			cancelled := i%4 < 2
			if cancelled {
				cwg.Add(1)
			}
			go func() {
				defer wg.Done()
				defer cancel()
				cc.Call(ctx, o)
				mu.Lock()
				sentOK[i] = o.Sent
				mu.Unlock()
				if cancelled {
					cwg.Done()
				}
				fill(head, 200) // the caller's buffers are its own again
				fill(tail, 201)
			}()
			time.Sleep(time.Duration(i%4) * 3 * time.Millisecond)
			if i == 2 {
				go func() { rc <- readAll() }()
			}
		}
		if err := <-rc; err != nil {
			t.Fatal(err)
		}
		cwg.Wait()
		mu.Lock()
		for i := range recv {
			if sentOK[i] != recv[i] {
				t.Errorf("round %d: call f%d: sent %v, received %v", round, i, sentOK[i], recv[i])
			}
		}
		mu.Unlock()
		if t.Failed() {
			cc.wmu.Lock()
			t.Logf("wbuf %d wsegs %d writing %v wloop %v werr %v wcut %v wflight %d wgen %d", len(cc.wbuf), len(cc.wsegs), cc.writing, cc.wloop, cc.werr, cc.wcut, cc.wflight, cc.wgen)
			cc.wmu.Unlock()
			t.FailNow()
		}

		cc.Close()
		wg.Wait()
	}
}
