package transport_test

import (
	"context"
	"fmt"
	"io"

	"github.com/arbor-rpc/arbor/transport"
)

func ExampleParseAddr() {
	for _, s := range []string{"localhost:8080", "unix:///run/arbor.sock", "mem://svc", "quic://h:1", "http://h:1"} {
		a, err := transport.ParseAddr(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s -> %s\n", s, a)
	}
	// Output:
	// localhost:8080 -> tcp://localhost:8080
	// unix:///run/arbor.sock -> unix:/run/arbor.sock
	// mem://svc -> mem:svc
	// quic://h:1 -> quic://h:1
	// transport: bad address "http://h:1": unknown scheme "http" (want tcp, tls, quic, unix or mem)
}

func ExampleListen() {
	ctx := context.Background()
	cfg := &transport.Config{Mem: transport.NewMemNetwork()}
	ln, err := transport.Listen(ctx, "mem:greeter", cfg)
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "hello from "+ln.URL())
	}()

	c, err := transport.Dial(ctx, ln.URL(), cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	msg, _ := io.ReadAll(c)
	fmt.Println(string(msg))
	// Output: hello from mem:greeter
}
