package conn

import "time"

// epoch is a reading of the clock when the package was loaded. The
// per-call times (an observed call's start, a deadline, an inline call's
// timing) are taken as epoch plus the monotonic time since (now): one
// read of the monotonic clock, where time.Now also reads the wall clock,
// the dearer of the two on a virtual machine. Such a time's wall reading
// is off by any step of the wall clock since the process started, which
// nothing here reads.
var epoch = time.Now()

// now is the current time, monotonic reading first (see epoch).
func now() time.Time { return epoch.Add(time.Since(epoch)) }
