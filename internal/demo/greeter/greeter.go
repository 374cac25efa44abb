// Package greeter is the demo's generated service (greeter.proto, by arbor
// gen): SayHello and SayHellos, registered by demo.Register beside the
// hand-written demo functions. It is a demo, not an example to copy: see
// examples/routeguide for that.
package greeter

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbor-rpc/arbor"
)

// MaxHellos bounds SayHellos's count.
const MaxHellos = 100

// Register registers the Greeter on r.
func Register(r arbor.Registrar) error { return RegisterGreeterHandler(r, impl{}) }

type impl struct{ UnimplementedGreeterHandler }

func (impl) SayHello(_ context.Context, req *HelloRequest) (*HelloReply, error) {
	if req.GetName() == "" {
		return nil, arbor.Errorf(arbor.InvalidArgument, "SayHello: name is empty")
	}
	return &HelloReply{Message: "Hello, " + req.GetName() + "!", At: timestamppb.New(time.Now())}, nil
}

func (impl) SayHellos(ctx context.Context, req *HellosRequest, out *arbor.Sender[*HelloReply]) error {
	if req.GetCount() < 0 || req.GetCount() > MaxHellos {
		return arbor.Errorf(arbor.OutOfRange, "SayHellos: count %d is outside 0..%d", req.GetCount(), MaxHellos)
	}
	for i := range req.GetCount() {
		if err := out.Send(&HelloReply{Message: fmt.Sprintf("Hello #%d, %s!", i+1, req.GetName()), At: timestamppb.New(time.Now())}); err != nil {
			return err
		}
	}
	return nil
}
