// Package testproxy is a TCP proxy for tests that holds every chunk for a
// fixed delay in each direction: a slow link on loopback, since this
// machine's kernel has no netem. It is not a general proxy.
package testproxy

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Delay forwards TCP between a client and target (host:port), holding
// every chunk for d in each direction: a link with a round trip of 2d. It
// returns the proxy's tcp:// address; the test's cleanup stops it.
func Delay(t testing.TB, target string, d time.Duration) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
			pipe := func(dst, src net.Conn) {
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
				for c := range q {
					time.Sleep(time.Until(c.at))
					if _, err := dst.Write(c.b); err != nil {
						io.Copy(io.Discard, src)
						return
					}
				}
			}
			wg.Add(2)
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return "tcp://" + l.Addr().String()
}
