package main

import (
	"net"
	"sync"
	"time"
)

// linkQueue is how many chunks may wait in one direction of a proxied
// connection before the proxy stops reading it.
const linkQueue = 4096

// linkProxy is a TCP proxy on loopback that holds every chunk it reads
// for a fixed delay before writing it on, in each direction: a link with
// a one-way latency of delay (a round trip of at least 2×delay), without
// netem. Chunks keep their order, and the proxy goes on reading while
// they wait, so the delay does not throttle a pipelined sender.
type linkProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startLinkProxy listens on 127.0.0.1:0 and forwards every connection to
// target (host:port) over a fresh TCP connection.
func startLinkProxy(target string, delay time.Duration) (*linkProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &linkProxy{ln: ln, target: target, delay: delay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port, to dial instead of target.
func (p *linkProxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, cuts every proxied connection (dropping what is
// in flight) and waits for all the proxy's goroutines.
func (p *linkProxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track registers a proxied pair so Close can cut it; false once closed.
func (p *linkProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *linkProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *linkProxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 10*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var pair sync.WaitGroup
			pair.Add(2)
			go func() { defer pair.Done(); p.pipe(out, in) }()
			go func() { defer pair.Done(); p.pipe(in, out) }()
			pair.Wait()
			p.untrack(in, out)
		}()
	}
}

// pipe copies src to dst, writing each chunk delay after it was read. When
// src ends it half-closes dst after the last chunk; when writing to dst
// fails it stops reading src.
func (p *linkProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		due time.Time
		b   []byte
	}
	q := make(chan chunk, linkQueue)
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		defer close(q)
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(p.delay), append([]byte(nil), buf[:n]...)}
			}
			if err != nil {
				return
			}
		}
	}()
	var werr error
	for c := range q {
		if werr != nil {
			continue // drain, so the reader is never stuck
		}
		time.Sleep(time.Until(c.due))
		if _, werr = dst.Write(c.b); werr != nil {
			src.Close()
		}
	}
	reader.Wait()
	if tc, ok := dst.(*net.TCPConn); ok && werr == nil {
		tc.CloseWrite()
	}
}
