package main

import (
	"syscall"
	"time"
)

// processCPU is the user+system CPU time this process has used so far
// (getrusage RUSAGE_SELF): client and server together when both run here.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuSampler, when set (separate-process mode), starts a sample of the
// server process's CPU time; the function it returns ends the sample and
// returns the CPU the server used meanwhile.
var cpuSampler func() func() time.Duration

// sampleCPU starts a server CPU sample; the returned function gives its
// result, or -1 when the server runs in this process.
func sampleCPU() func() time.Duration {
	if cpuSampler == nil {
		return func() time.Duration { return -1 }
	}
	return cpuSampler()
}
