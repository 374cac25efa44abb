package main

import "time"

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
