package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// The proto section: a unary echo generated from one .proto
// (echopb/echo.proto), over Arbor's own protocol (the generated client and
// handler), over Arbor's gRPC bridge called by grpc-go's client, and
// served natively by grpc-go, on one connection each, in one run. The
// runners are in arbor_proto.go; this file measures and reports.

// The bars for the section.
const (
	protoNativeBar = 5.0 // arbor-proto calls/s ≥ 5× grpc-proto's at 64 callers
	protoBridgeBar = 0.8 // bridge-grpc calls/s ≥ 0.8× grpc-proto's
)

// The variants, in run and print order.
const (
	protoArbor  = "arbor-proto" // generated client → generated handler, Arbor's protocol over TCP
	protoBridge = "bridge-grpc" // grpc-go client → bridge (h2c) → the same handler
	// grpc-go client → the bridge's native gRPC server (h2c, no net/http
	// or connect-go) → the same handler.
	protoBridgeNative = "bridge-native"
	protoGRPC         = "grpc-proto" // grpc-go client → grpc-go server, same messages
	// connect-go serving the same echo on the same HTTP server as the
	// bridge, called by grpc-go: the floor under bridge-grpc.
	protoConnect = "connect-grpc"
)

var protoVariants = []string{protoArbor, protoBridge, protoBridgeNative, protoConnect, protoGRPC}

// ProtoRunner runs the three variants; each keeps one connection.
type ProtoRunner interface {
	// Op returns one echo call of variant, which checks the answer.
	Op(variant string) func(ctx context.Context) error
	// Note describes the variant.
	Note(variant string) string
	Close() error
}

// startProto starts the runner; nil when built without Arbor.
var startProto func(ctx context.Context, payload []byte) (ProtoRunner, error)

// runProto is the proto section.
func runProto(w io.Writer, cfg config, sizes, cs []int) error {
	fmt.Fprintln(w, "## Generated services (one .proto): Arbor, Arbor's gRPC bridge, grpc-go")
	fmt.Fprintln(w)
	if startProto == nil {
		fmt.Fprintln(w, "Skipped: built without Arbor.")
		return nil
	}
	var results []result
	var notes []string
	for _, size := range sizes {
		payload := makePayload(size)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := startProto(ctx, payload)
		cancel()
		if err != nil {
			return err
		}
		if notes == nil {
			for _, v := range protoVariants {
				notes = append(notes, v+": "+r.Note(v))
			}
		}
		for _, c := range cs {
			for _, v := range protoVariants {
				res, err := measureOp(fmt.Sprintf("%s %dB c%d", v, size, c), r.Op(v), c, cfg.warm, cfg.dur)
				if err != nil {
					r.Close()
					return err
				}
				res.system, res.payload = v, size
				fmt.Fprintf(os.Stderr, "%-12s %-6s c%-4d %10s calls/s  p50 %-9s p99 %-9s %6.1f allocs/call\n",
					v, sizeLabel(size), c, fmtRate(res.callsPerSec), fmtDur(res.p50), fmtDur(res.p99), res.allocsPerCall)
				results = append(results, res)
			}
		}
		r.Close()
	}
	printResults(w, results)
	fmt.Fprintln(w, "Ratios (calls/s over grpc-proto's):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| payload | callers | arbor-proto ÷ grpc-proto | bar | bridge-grpc ÷ grpc-proto | bar | bridge-native ÷ grpc-proto | bar | connect-grpc ÷ grpc-proto (the floor) | bridge-grpc ÷ connect-grpc |")
	fmt.Fprintln(w, "|---|---:|---:|---|---:|---|---:|---|---:|---:|")
	for _, size := range sizes {
		for _, c := range cs {
			get := func(v string) float64 {
				for _, r := range results {
					if r.system == v && r.payload == size && r.conc == c {
						return r.callsPerSec
					}
				}
				return 0
			}
			g := get(protoGRPC)
			if g == 0 {
				continue
			}
			a, b, n, floor := get(protoArbor)/g, get(protoBridge)/g, get(protoBridgeNative)/g, get(protoConnect)/g
			nb := "—"
			if c == 64 {
				nb = verdict(a >= protoNativeBar, fmt.Sprintf("≥ %.1f×", protoNativeBar))
			}
			bar := fmt.Sprintf("≥ %.1f×", protoBridgeBar)
			fmt.Fprintf(w, "| %s | %d | %.2f× | %s | %.2f× | %s | %.2f× | %s | %.2f× | %.2f× |\n", sizeLabel(size), c, a, nb, b,
				verdict(b >= protoBridgeBar, bar), n, verdict(n >= protoBridgeBar, bar), floor, get(protoBridge)/get(protoConnect))
		}
	}
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintln(w, "- "+n)
	}
	fmt.Fprintln(w)
	return nil
}

func verdict(ok bool, bar string) string {
	if ok {
		return bar + " ✓"
	}
	return bar + " ✗"
}
