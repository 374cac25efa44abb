package arbor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/arbor-rpc/arbor"
	"github.com/arbor-rpc/arbor/transport"
)

// A server and a client in one process, over an in-memory network. Real
// programs use tcp://, tls:// or unix: addresses the same way.
func Example() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}

	srv := arbor.NewServer()
	arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	arbor.Handle1(srv, "upper", func(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	l, err := transport.Listen(ctx, "mem:calc", mem)
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	c, err := arbor.Dial(ctx, "mem:calc", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sum, err := arbor.Call2[int](ctx, c, "add", 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	s, err := arbor.Call1[string](ctx, c, "upper", "arbor")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(sum, s)
	// Output: 5 ARBOR
}

type Order struct {
	Item  string
	Count int
}

type Receipt struct {
	Total int
	Lines []string
}

// Arguments and results may be structs and slices; they travel as msgpack.
func ExampleHandle1() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	prices := map[string]int{"apple": 3, "pear": 5}
	arbor.Handle1(srv, "checkout", func(ctx context.Context, orders []Order) (Receipt, error) {
		var r Receipt
		for _, o := range orders {
			p, ok := prices[o.Item]
			if !ok {
				return Receipt{}, arbor.Errorf(arbor.NotFound, "no price for %q", o.Item)
			}
			r.Total += p * o.Count
			r.Lines = append(r.Lines, fmt.Sprintf("%d %s", o.Count, o.Item))
		}
		return r, nil
	})
	l, _ := transport.Listen(ctx, "mem:shop", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:shop", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	r, err := arbor.Call1[Receipt](ctx, c, "checkout", []Order{{"apple", 2}, {"pear", 1}})
	fmt.Println(r.Total, r.Lines, err)
	_, err = arbor.Call1[Receipt](ctx, c, "checkout", []Order{{"plum", 1}})
	fmt.Println(err)
	// Output:
	// 11 [2 apple 1 pear] <nil>
	// NotFound: no price for "plum"
}

// Errors keep their code, message, details and retryable flag across the
// wire; compare them with errors.Is against the code sentinels and read
// them with errors.As.
func ExampleError() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.Handle1(srv, "user", func(ctx context.Context, id int) (string, error) {
		if id != 1 {
			return "", &arbor.Error{Code: arbor.NotFound, Message: fmt.Sprintf("no user %d", id), Details: []byte("try 1")}
		}
		return "ann", nil
	})
	l, _ := transport.Listen(ctx, "mem:users", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:users", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = arbor.Call1[string](ctx, c, "user", 7)
	fmt.Println(err)
	fmt.Println(errors.Is(err, arbor.ErrNotFound), arbor.CodeOf(err))
	var ae *arbor.Error
	if errors.As(err, &ae) {
		fmt.Printf("details: %s\n", ae.Details)
	}

	_, err = arbor.Call2[string](ctx, c, "user", 1, 2)
	fmt.Println(err)
	_, err = arbor.Call1[string](ctx, c, "user", "one")
	fmt.Println(err)
	// Output:
	// NotFound: no user 7
	// true NotFound
	// details: try 1
	// InvalidArgument: user takes 1 argument(s) (int), got 2
	// InvalidArgument: user: argument 0 (int): expected int, got string (at byte 1)
}

// Interceptors wrap every call, net/http middleware style: the first given
// is the outermost. This server logs calls and refuses those without a
// token; the client adds the token to every call's metadata.
func ExampleWithInterceptors() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}

	logCalls := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			resp, err := next(ctx, req)
			fmt.Printf("server: %s -> %v\n", req.ID, arbor.CodeOf(err))
			return resp, err
		}
	}
	auth := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			if req.Metadata.Get("token") != "s3cret" {
				return nil, arbor.NewError(arbor.Unauthenticated, "missing or wrong token")
			}
			return next(ctx, req)
		}
	}
	srv := arbor.NewServer(arbor.WithInterceptors(logCalls, auth))
	arbor.Handle0(srv, "time", func(ctx context.Context) (string, error) { return "noon", nil })
	l, _ := transport.Listen(ctx, "mem:clock", mem)
	go srv.Serve(l)
	defer srv.Close()

	addToken := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			req.Metadata = append(req.Metadata, arbor.Pair{Key: "token", Value: "s3cret"})
			return next(ctx, req)
		}
	}
	withToken, err := arbor.Dial(ctx, "mem:clock", arbor.WithTransport(mem), arbor.WithInterceptors(addToken))
	if err != nil {
		log.Fatal(err)
	}
	defer withToken.Close()
	without, err := arbor.Dial(ctx, "mem:clock", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer without.Close()

	fmt.Println(arbor.Call0[string](ctx, withToken, "time"))
	_, err = arbor.Call0[string](ctx, without, "time")
	fmt.Println(err)
	// Output:
	// server: time -> OK
	// noon <nil>
	// server: time -> Unauthenticated
	// Unauthenticated: missing or wrong token
}

// Metadata set on the caller's context travels with its calls; handlers
// read it with IncomingMetadata.
func ExampleWithMetadata() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.Handle0(srv, "greet", func(ctx context.Context) (string, error) {
		md := arbor.IncomingMetadata(ctx)
		return fmt.Sprintf("hello %s (request %s)", md.Get("user"), md.Get("request-id")), nil
	})
	l, _ := transport.Listen(ctx, "mem:greeter", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:greeter", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx = arbor.WithMetadata(ctx, "user", "ann", "request-id", "42")
	fmt.Println(arbor.Call0[string](ctx, c, "greet"))
	// Output: hello ann (request 42) <nil>
}

// The catalog lists a server's functions with their signatures.
func ExampleClient_Catalog() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	arbor.Handle1(srv, "echo", func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	arbor.Handle0(srv, "version", func(ctx context.Context) (string, error) { return "1.0", nil })
	err := arbor.Handle0(srv, "version", func(ctx context.Context) (string, error) { return "2.0", nil })
	fmt.Println(err)
	l, _ := transport.Listen(ctx, "mem:cat", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:cat", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	fs, err := c.Catalog(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range fs {
		fmt.Println(f)
	}
	// Output:
	// AlreadyExists: function "version" is already registered
	// add(int, int) int
	// echo(bytes) bytes
	// version() string
}

// Shutdown lets running calls finish, then closes; Serve returns
// ErrServerClosed.
func ExampleServer_Shutdown() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	started, release := make(chan struct{}), make(chan struct{})
	arbor.Handle0(srv, "slow", func(ctx context.Context) (string, error) {
		close(started)
		<-release
		return "finished", nil
	})
	l, _ := transport.Listen(ctx, "mem:svc", mem)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c, err := arbor.Dial(ctx, "mem:svc", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	result := make(chan string)
	go func() {
		s, err := arbor.Call0[string](ctx, c, "slow")
		result <- fmt.Sprint(s, " ", err)
	}()
	<-started
	shut := make(chan error)
	go func() { shut <- srv.Shutdown(ctx) }()
	fmt.Println(<-served)
	close(release)
	fmt.Println(<-result)
	fmt.Println(<-shut)
	// Output:
	// arbor: server closed
	// finished <nil>
	// <nil>
}

// Promises: a call sent with GoN returns at once; its promise is an
// argument of further calls before it resolves, and the server resolves
// the chain, so these three dependent calls cost one round trip.
func ExampleGo2() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	arbor.Handle2(srv, "mul", func(ctx context.Context, a, b int) (int, error) { return a * b, nil })
	l, _ := transport.Listen(ctx, "mem:math", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:math", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sum := arbor.Go2[int](ctx, c, "add", 1, 2)       // 3
	product := arbor.Go2[int](ctx, c, "mul", sum, 7) // (1 + 2) * 7, sent before sum resolves
	total := arbor.Go2[int](ctx, c, "add", product, sum)
	fmt.Println(total.Wait())
	fmt.Println(sum.Wait()) // Wait also lets the server forget the answer
	// Output:
	// 24 <nil>
	// 3 <nil>
}

// Capabilities: a handler returns a Service (an object with methods) and
// the caller gets a *Ref, a Caller of its own, with the same typed
// helpers. A Ref can go back as an argument, and a service can sit in a
// struct field.
func ExampleService() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.Handle1(srv, "counter", func(ctx context.Context, start int) (*arbor.Service, error) {
		n := start
		svc := arbor.NewService("counter")
		arbor.Handle1(svc, "add", func(ctx context.Context, d int) (int, error) { n += d; return n, nil })
		return svc, nil
	})
	type Pair struct {
		Name    string
		Counter *arbor.Ref
	}
	arbor.Handle1(srv, "bump", func(ctx context.Context, p Pair) (string, error) {
		n, err := arbor.Call1[int](ctx, p.Counter, "add", 100) // a call on the capability inside the struct
		return fmt.Sprintf("%s is at %d", p.Name, n), err
	})
	l, _ := transport.Listen(ctx, "mem:counters", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:counters", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ref, err := arbor.Call1[*arbor.Ref](ctx, c, "counter", 10)
	if err != nil {
		log.Fatal(err)
	}
	defer ref.Close() // references are released when closed (or, with a warning, when collected)
	fmt.Println(arbor.Call1[int](ctx, ref, "add", 5))
	fmt.Println(arbor.Call1[string](ctx, c, "bump", Pair{Name: "ref", Counter: ref}))
	// Output:
	// 15 <nil>
	// ref is at 115 <nil>
}

// Streams: a server stream sends any number of messages after one
// argument; Recv returns io.EOF after the last.
func ExampleCallServerStream() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.HandleServerStream(srv, "countdown", func(ctx context.Context, from int, out *arbor.Sender[int]) error {
		for i := from; i > 0; i-- {
			if err := out.Send(i); err != nil {
				return err
			}
		}
		return nil
	})
	l, _ := transport.Listen(ctx, "mem:streams", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:streams", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s, err := arbor.CallServerStream[int](ctx, c, "countdown", 3)
	if err != nil {
		log.Fatal(err)
	}
	for {
		n, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(n, " ")
	}
	fmt.Println("liftoff")
	// Output: 3 2 1 liftoff
}

// Bidirectional streams send and receive independently.
func ExampleOpenBidiStream() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.HandleBidiStream(srv, "shout", func(ctx context.Context, in *arbor.Receiver[string], out *arbor.Sender[string]) error {
		for {
			s, err := in.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := out.Send(strings.ToUpper(s) + "!"); err != nil {
				return err
			}
		}
	})
	l, _ := transport.Listen(ctx, "mem:shout", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:shout", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s, err := arbor.OpenBidiStream[string, string](ctx, c, "shout") // receives Out, sends In
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range []string{"hey", "you"} {
		s.Send(w)
		fmt.Println(s.Recv())
	}
	s.CloseSend()
	_, err = s.Recv()
	fmt.Println(err)
	// Output:
	// HEY! <nil>
	// YOU! <nil>
	// EOF
}

// A capability-first server: the client obtains the bootstrap service in
// one call and reaches everything else through capabilities, with no
// function ids.
func ExampleWithBootstrap() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	greeter := arbor.NewService("greeter")
	arbor.Handle1(greeter, "hello", func(ctx context.Context, name string) (string, error) { return "hello, " + name, nil })
	srv := arbor.NewServer(arbor.WithBootstrap(greeter))
	l, _ := transport.Listen(ctx, "mem:boot", mem)
	go srv.Serve(l)
	defer srv.Close()
	c, err := arbor.Dial(ctx, "mem:boot", arbor.WithTransport(mem))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	main, err := c.Bootstrap(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer main.Close()
	fmt.Println(arbor.Call1[string](ctx, main, "hello", "vat"))
	// Output: hello, vat <nil>
}

// A client interceptor's chain returns once a promise is sent (or a
// stream opened); Response.OnEnd runs when that call is over.
func ExampleResponse_OnEnd() {
	ctx := context.Background()
	mem := &transport.Config{Mem: transport.NewMemNetwork()}
	srv := arbor.NewServer()
	arbor.Handle2(srv, "add", func(ctx context.Context, a, b int) (int, error) { return a + b, nil })
	l, _ := transport.Listen(ctx, "mem:adder", mem)
	go srv.Serve(l)
	defer srv.Close()

	ended := make(chan string, 1)
	watch := func(next arbor.CallFunc) arbor.CallFunc {
		return func(ctx context.Context, req *arbor.Request) (*arbor.Response, error) {
			resp, err := next(ctx, req)
			if err == nil && req.Async {
				id := req.ID
				resp.OnEnd(func(err error) { ended <- fmt.Sprintf("%s answered: %v", id, arbor.CodeOf(err)) })
			}
			return resp, err
		}
	}
	c, err := arbor.Dial(ctx, "mem:adder", arbor.WithTransport(mem), arbor.WithInterceptors(watch))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	p := arbor.Go2[int](ctx, c, "add", 2, 3) // the interceptor has returned
	fmt.Println(<-ended)
	fmt.Println(p.Wait())
	// Output:
	// add answered: OK
	// 5 <nil>
}
