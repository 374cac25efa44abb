package server_test

import (
	"context"
	"fmt"
	"io"

	"github.com/arbor-rpc/arbor"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
	"github.com/arbor-rpc/arbor/examples/routeguide/server"
)

// A route guide client: the generated RouteGuideClient over an
// *arbor.Client, calling each kind of RPC.
func Example() {
	ctx := context.Background()
	srv := arbor.NewServer()
	if err := server.New(nil).Register(srv); err != nil {
		panic(err)
	}
	l, err := srv.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	conn, err := arbor.Dial(ctx, l.URL())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	c := pb.NewRouteGuideClient(conn)

	f, err := c.GetFeature(ctx, &pb.Point{Latitude: 409146138, Longitude: -746188906})
	fmt.Printf("GetFeature: %q, %v\n", f.GetName(), err)

	list, err := c.ListFeatures(ctx, &pb.Rectangle{
		Lo: &pb.Point{Latitude: 410000000, Longitude: -750000000},
		Hi: &pb.Point{Latitude: 415000000, Longitude: -740000000},
	})
	if err != nil {
		panic(err)
	}
	for {
		f, err := list.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		fmt.Println("ListFeatures:", f.GetName())
	}

	route, err := c.RecordRoute(ctx)
	if err != nil {
		panic(err)
	}
	route.Send(&pb.Point{Latitude: 407838351, Longitude: -746143763})
	route.Send(&pb.Point{Latitude: 408122808, Longitude: -743999179})
	sum, err := route.CloseAndRecv()
	fmt.Printf("RecordRoute: %d points, %d features, %d m, %v\n", sum.GetPointCount(), sum.GetFeatureCount(), sum.GetDistance(), err)

	chat, err := c.RouteChat(ctx)
	if err != nil {
		panic(err)
	}
	at := &pb.Point{Latitude: 1, Longitude: 1}
	chat.Send(&pb.RouteNote{Location: at, Message: "first"})
	chat.Send(&pb.RouteNote{Location: at, Message: "second"})
	n, err := chat.Recv()
	fmt.Printf("RouteChat: %q, %v\n", n.GetMessage(), err)
	chat.CloseSend()
	_, err = chat.Recv()
	fmt.Println("RouteChat ends:", err)
	// Output:
	// GetFeature: "", <nil>
	// ListFeatures: U.S. 6, Shohola, PA 18458, USA
	// ListFeatures: Mid Hudson Psychiatric Center, New Hampton, NY 10958, USA
	// RecordRoute: 2 points, 2 features, 18327 m, <nil>
	// RouteChat: "first", <nil>
	// RouteChat ends: EOF
}
