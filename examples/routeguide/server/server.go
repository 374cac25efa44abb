// Package server implements the route guide (package routeguide, generated
// from route_guide.proto by arbor gen): one implementation of the four
// RPCs, served to Arbor clients and, through package bridge, to gRPC,
// gRPC-Web and Connect clients alike.
//
// It is an example, not a service: its features are a fixed list and its
// notes live in memory.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/arbor-rpc/arbor"
	pb "github.com/arbor-rpc/arbor/examples/routeguide/routeguide"
)

// Server is the route guide over a fixed list of features.
type Server struct {
	pb.UnimplementedRouteGuideHandler // methods added to the .proto later answer Unimplemented

	features []*pb.Feature

	mu    sync.Mutex
	notes map[string][]*pb.RouteNote // by location
	// now is the clock RecordRoute times routes with.
	now func() time.Time
}

// New returns a server knowing features (DefaultFeatures if nil).
func New(features []*pb.Feature) *Server {
	if features == nil {
		features = DefaultFeatures()
	}
	return &Server{features: features, notes: map[string][]*pb.RouteNote{}, now: time.Now}
}

// Register registers s on srv: the RouteGuide functions and the schema
// function that describes them.
func (s *Server) Register(srv *arbor.Server) error { return pb.RegisterRouteGuideHandler(srv, s) }

// GetFeature returns the feature at p, or one with an empty name.
func (s *Server) GetFeature(_ context.Context, p *pb.Point) (*pb.Feature, error) {
	if p == nil {
		return nil, arbor.Errorf(arbor.InvalidArgument, "GetFeature: no point given")
	}
	for _, f := range s.features {
		if f.GetLocation().GetLatitude() == p.GetLatitude() && f.GetLocation().GetLongitude() == p.GetLongitude() {
			return f, nil
		}
	}
	return &pb.Feature{Location: p}, nil
}

// ListFeatures sends every named feature inside r.
func (s *Server) ListFeatures(ctx context.Context, r *pb.Rectangle, out *arbor.Sender[*pb.Feature]) error {
	if r.GetLo() == nil || r.GetHi() == nil {
		return arbor.Errorf(arbor.InvalidArgument, "ListFeatures: the rectangle needs both lo and hi")
	}
	for _, f := range s.features {
		if f.GetName() != "" && inRange(f.GetLocation(), r) {
			if err := out.Send(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// RecordRoute sums up a route: points, features passed, distance, time.
func (s *Server) RecordRoute(_ context.Context, in *arbor.Receiver[*pb.Point]) (*pb.RouteSummary, error) {
	var points, features, distance int32
	var last *pb.Point
	start := s.now()
	for {
		p, err := in.Recv()
		if errors.Is(err, io.EOF) {
			return &pb.RouteSummary{PointCount: points, FeatureCount: features, Distance: distance,
				ElapsedTime: int32(s.now().Sub(start) / time.Second)}, nil
		}
		if err != nil {
			return nil, err
		}
		points++
		for _, f := range s.features {
			if f.GetName() != "" && proto3Equal(f.GetLocation(), p) {
				features++
			}
		}
		if last != nil {
			distance += calcDistance(last, p)
		}
		last = p
	}
}

// RouteChat answers each note with the notes left earlier at its
// location, then remembers it.
func (s *Server) RouteChat(_ context.Context, in *arbor.Receiver[*pb.RouteNote], out *arbor.Sender[*pb.RouteNote]) error {
	for {
		n, err := in.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		key := fmt.Sprintf("%d %d", n.GetLocation().GetLatitude(), n.GetLocation().GetLongitude())
		s.mu.Lock()
		earlier := append([]*pb.RouteNote(nil), s.notes[key]...)
		s.notes[key] = append(s.notes[key], n)
		s.mu.Unlock()
		for _, e := range earlier {
			if err := out.Send(e); err != nil {
				return err
			}
		}
	}
}

func proto3Equal(a, b *pb.Point) bool {
	return a.GetLatitude() == b.GetLatitude() && a.GetLongitude() == b.GetLongitude()
}

func inRange(p *pb.Point, r *pb.Rectangle) bool {
	left := min(r.GetLo().GetLongitude(), r.GetHi().GetLongitude())
	right := max(r.GetLo().GetLongitude(), r.GetHi().GetLongitude())
	top := max(r.GetLo().GetLatitude(), r.GetHi().GetLatitude())
	bottom := min(r.GetLo().GetLatitude(), r.GetHi().GetLatitude())
	return p.GetLongitude() >= left && p.GetLongitude() <= right && p.GetLatitude() >= bottom && p.GetLatitude() <= top
}

// calcDistance is the great-circle distance between two points, in
// metres (the haversine formula).
func calcDistance(p1, p2 *pb.Point) int32 {
	const coordFactor = 1e7
	const r = 6371000.0 // metres
	lat1 := toRadians(float64(p1.GetLatitude()) / coordFactor)
	lat2 := toRadians(float64(p2.GetLatitude()) / coordFactor)
	lng1 := toRadians(float64(p1.GetLongitude()) / coordFactor)
	lng2 := toRadians(float64(p2.GetLongitude()) / coordFactor)
	dlat, dlng := lat2-lat1, lng2-lng1
	a := math.Sin(dlat/2)*math.Sin(dlat/2) + math.Cos(lat1)*math.Cos(lat2)*math.Sin(dlng/2)*math.Sin(dlng/2)
	c := 2 * math.Atan2(math.Sqrt(a), math.Sqrt(1-a))
	return int32(r * c)
}

func toRadians(deg float64) float64 { return deg * math.Pi / 180 }

// DefaultFeatures are a few named places (from gRPC's route guide data)
// and one unnamed point.
func DefaultFeatures() []*pb.Feature {
	f := func(name string, lat, lng int32) *pb.Feature {
		return &pb.Feature{Name: name, Location: &pb.Point{Latitude: lat, Longitude: lng}}
	}
	return []*pb.Feature{
		f("Patriots Path, Mendham, NJ 07945, USA", 407838351, -746143763),
		f("101 New Jersey 10, Whippany, NJ 07981, USA", 408122808, -743999179),
		f("U.S. 6, Shohola, PA 18458, USA", 413628156, -749015468),
		f("5 Conners Road, Kingston, NY 12401, USA", 419999544, -740371136),
		f("Mid Hudson Psychiatric Center, New Hampton, NY 10958, USA", 414008389, -743951297),
		f("", 416851321, -742674555),
	}
}
