package wire

import (
	"runtime"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// allocated returns the bytes the heap allocated while f ran. TotalAlloc
// only grows, whatever the collector does, so this is exact for one call
// (other goroutines of the test binary add noise, which the bounds allow).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// allocBound is what decoding n bytes of input may allocate: a small
// multiple of the input and a constant for buffers and errors.
func allocBound(n int) uint64 { return 64*uint64(n) + 64<<10 }
