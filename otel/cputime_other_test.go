//go:build !unix

package arborotel_test

// cpuTime is not measured without getrusage: 0.
func cpuTime() int64 { return 0 }
