//go:build !unix

package main

import "time"

// processCPU is not measured without getrusage: 0, which the tables show
// as no figure.
func processCPU() time.Duration { return 0 }

// raiseFDLimit: Windows has no such limit to lift.
func raiseFDLimit() {}
