package main

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// pinCore0 pins this process to core 0 with GOMAXPROCS 1 and returns what
// undoes it.
func pinCore0() (func(), error) {
	var old, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, err
	}
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return nil, err
	}
	prev := runtime.GOMAXPROCS(1)
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.GOMAXPROCS(prev)
	}, nil
}
